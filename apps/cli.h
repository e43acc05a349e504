// The `wavtok` command line, as a library function so tests can call it in-process.
#pragma once

namespace wavtok {

// Runs the CLI; returns the process exit code. Errors are printed to stderr, never thrown.
int cli_main(int argc, char** argv);

}  // namespace wavtok
