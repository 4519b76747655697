/* A tiny freestanding program for the ELF loader tests, built by run.sh with
   the real cross compilers. It has the three things a loader must handle:
   code (.text), initialised data (.data, copied from the file) and
   zero-initialised data (.bss, in memory but not in the file). */
char data_bytes[64] = "hvbook ELF loader test data";
char bss_bytes[3000];

void _start(void)
{
    bss_bytes[0] = data_bytes[0];
    for (;;)
        ;
}
