/* Replay: run every file named on the command line through one harness,
   once. Built with gcc and the sanitizers by tests/unit/run.sh, so that
   make test re-checks the kept corpus (tests/fuzz/corpus/) without clang:
   an input that once crashed and was fixed stays fixed.

   Usage: replay-<harness> FILE...
   Prints "replayed N inputs" on stderr; a crash is a sanitizer report and a
   non-zero exit. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

int main(int argc, char **argv)
{
    int done = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        // Exactly the input's size, so a read one byte past it is caught.
        u8 *buf = malloc(n > 0 ? (size_t)n : 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 2;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
        done++;
    }
    fprintf(stderr, "replayed %d inputs\n", done);
    return 0;
}
