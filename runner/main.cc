// Placeholder until the CLI lands.
#include <cstdio>
#include "netplay_version.h"
int main() { std::puts("netplay " NETPLAY_VERSION); return 0; }
