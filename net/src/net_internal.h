/* net_internal.h - what the net module's sources share. Private to net/. */
#ifndef WEFT_NET_INTERNAL_H
#define WEFT_NET_INTERNAL_H

#include <netinet/in.h>

#include "internal.h"

/* Parses "A.B.C.D:PORT" (PORT 0..65535) into *a. 0 or -EINVAL. */
WEFT_INTERNAL int weft__net_parse_addr(const char *spec, struct sockaddr_in *a);

#endif
