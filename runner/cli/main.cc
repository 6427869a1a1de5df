#include "runner/cli/cli.h"

int main(int argc, char** argv) { return netplay::cli_main(argc, argv); }
