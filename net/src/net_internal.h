/* net_internal.h - what the net module's sources share. Private to net/. */
#ifndef WEFT_NET_INTERNAL_H
#define WEFT_NET_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Parses "A.B.C.D:PORT" (PORT 0..65535) into *a. 0 or -EINVAL. */
WEFT_INTERNAL int weft__net_parse_addr(const char *spec, struct sockaddr_in *a);

/* The port's solo mode (pool/src/port_io.c, docs/port.md): fn runs on the port's reaper
 * thread as the port's one user thread; join waits for its end (before the port's close). */
struct weft_port;
WEFT_INTERNAL int weft__port_solo(struct weft_port *p, void (*fn)(void *), void *arg);
WEFT_INTERNAL void weft__port_solo_join(struct weft_port *p);
/* True when a server with this many port threads runs its one thread in solo mode: one
 * thread, unless WEFT_PORT_SOLO=0 in the environment turns it off. */
WEFT_INTERNAL bool weft__net_solo_wanted(uint32_t threads);

#endif
