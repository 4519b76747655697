/* mksparse IMAGE OUT: write a disk image in the sparse form fuzz_fat.c
   reads (the size in sectors, then each non-zero sector with its number). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void put32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, f);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mksparse IMAGE OUT\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    if (!in || !out) {
        perror("mksparse");
        return 1;
    }
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    put32(out, (uint32_t)(size / 512));
    static const unsigned char zero[512];
    unsigned char sec[512];
    for (uint32_t s = 0; fread(sec, 1, 512, in) == 512; s++) {
        if (memcmp(sec, zero, 512) == 0)
            continue;
        put32(out, s);
        fwrite(sec, 1, 512, out);
    }
    fclose(in);
    return fclose(out) != 0;
}
