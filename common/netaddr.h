/* netaddr.h — a listen address as the HTTP servers (recorder/ops/httpd.c,
 * web/webd.c) take it: a numeric IPv4 or IPv6 address, or "localhost"
 * (127.0.0.1), and a port. */
#ifndef ALDREC_NETADDR_H
#define ALDREC_NETADDR_H

#include <sys/socket.h>

/* Fills *ss with host:port. Returns AF_INET or AF_INET6, or -1 when host
 * is not such an address. */
int netaddr_parse(const char *host, int port, struct sockaddr_storage *ss);

#endif
