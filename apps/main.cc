#include "apps/cli.h"

int main(int argc, char** argv) { return wavtok::cli_main(argc, argv); }
