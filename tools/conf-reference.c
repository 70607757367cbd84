/* Prints the configuration reference generated from the directive table:
 * `conf-reference md` (docs/configuration.md), `conf-reference man`
 * (packaging/edgegate.conf.5). `make reference` rewrites both files. */
#include "conf/conf.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2 || conf_print_reference(stdout, argv[1]) != 0) {
        fprintf(stderr, "usage: conf-reference md|man\n");
        return 1;
    }
    return 0;
}
