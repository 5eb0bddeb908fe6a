/* port_io.c - the device list, operations in flight and the reaper (in progress). */
#include "port_impl.h"

void weft__port_io_close(weft_port *p)
{
	(void)p;
}

void weft__port_io_free(weft_port *p)
{
	(void)p;
}
