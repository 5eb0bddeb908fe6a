/* port_ring.h - the port's packet queues, for port.c only: the bounded lock-free ring
 * (one sequence number per slot, after Vyukov's MPMC queue) and the growable overflow
 * queue under the port lock. How port.c uses them is explained at its top. */
#ifndef WEFT_PORT_RING_H
#define WEFT_PORT_RING_H

#include <errno.h>
#include <stdlib.h>

#include "atomic.h"
#include "port_impl.h"

/* Positions are 32-bit and wrap (compared as differences). A CAS whose thread sleeps
 * while 2^32 packets go through could succeed on a stale word: the usual bounded-tag
 * caveat, accepted (hours of traffic inside one preempted instruction window). */
#define RING_MASK (WEFT__RING_CAP - 1u)
#define ENQ_CLOSED ((uint64_t)1 << 32)

/* ---- the ring (lock-free) ---- */

static inline uint32_t st_released(uint64_t d)
{
	return (uint32_t)(d >> 32);
}

/* Under the lock: released += delta (delta may be (uint32_t)-1). Relaxed: released only
 * changes under the lock (here, or in a counted take's CAS), so lock holders see it in
 * order; a lock-free take (add 0) CASes the whole word and fails if it changed. */
static inline void released_add(weft_port *p, uint32_t delta)
{
	weft__fadd_rlx(&p->deq, (uint64_t)delta << 32);
}

static inline uint32_t released_get(weft_port *p)
{
	return st_released(weft__load_rlx(&p->deq));
}

/* Claims the next ring position and publishes k there: 1, 0 when the ring is full,
 * -ESHUTDOWN once the port is closed. */
static inline int ring_put(weft_port *p, const struct weft__pkt *k)
{
	/* relaxed: a guess until the CAS; the slot's seq orders the data. */
	uint64_t e = weft__load_rlx(&p->enq);
	for (;;) {
		if (e & ENQ_CLOSED)
			return -ESHUTDOWN;
		uint32_t pos = (uint32_t)e;
		struct weft__slot *s = &p->ring[pos & RING_MASK];
		/* acquire: pairs with the release in ring_take that freed the slot: the last
		 * consumer's reads of it happen before the writes below. */
		int32_t d = (int32_t)(weft__load_acq(&s->seq) - pos);
		if (d < 0)
			return 0; /* a lap behind: full */
		if (d > 0) {
			e = weft__load_rlx(&p->enq); /* another producer took pos */
			continue;
		}
		/* relaxed: the claim publishes nothing (seq does); the closed bit and the
		 * position are one word, so a claim after the close fails here. */
		if (weft__cas_rlx(&p->enq, &e, (e & ~(uint64_t)UINT32_MAX) | (uint32_t)(pos + 1u))) {
			s->bytes = k->bytes;
			s->key = k->key;
			s->ov = k->ov;
			/* release: publishes the packet; pairs with the acquire in ring_take. */
			weft__store_rel(&s->seq, pos + 1u);
			return 1;
		}
	}
}

/* Takes up to max published packets from the head of the ring in one CAS, if the
 * released count is below limit, and adds add to it in the same CAS. Returns how many
 * (0: the head is not published, or the limit). */
static inline uint32_t ring_take(weft_port *p, weft_completion *out, uint32_t max, uint32_t limit,
				 uint32_t add)
{
	uint64_t d = weft__load_rlx(&p->deq);
	for (;;) {
		if (st_released(d) >= limit)
			return 0;
		uint32_t pos = (uint32_t)d, n = 0;
		/* acquire: pairs with the release in ring_put: the packet's fields are seen. */
		while (n < max && weft__load_acq(&p->ring[(pos + n) & RING_MASK].seq) == pos + n + 1u)
			n++;
		if (n == 0) {
			/* A stale head (another thread took it meanwhile) must not read as empty:
			 * dispatch relies on it. relaxed: see released_add. */
			uint64_t d2 = weft__load_rlx(&p->deq);
			if (d2 == d)
				return 0;
			d = d2;
			continue;
		}
		uint64_t nd = ((uint64_t)(st_released(d) + add) << 32) | (uint32_t)(pos + n);
		/* relaxed: only this word's position and count change; the slots are ordered
		 * by their seq. Slots pos..pos+n-1 stay ours: no one else can claim them. */
		if (weft__cas_rlx(&p->deq, &d, nd)) {
			for (uint32_t i = 0; i < n; i++) {
				struct weft__slot *s = &p->ring[(pos + i) & RING_MASK];
				out[i] = (weft_completion){s->bytes, s->key, s->ov};
				/* release: the reads above happen before the next lap's producer
				 * writes; pairs with the acquire in ring_put. */
				weft__store_rel(&s->seq, pos + i + WEFT__RING_CAP);
			}
			return n;
		}
	}
}

/* ---- the overflow queue (port lock) ---- */

static inline int q_grow(weft_port *p, uint32_t need)
{
	if (need <= p->qcap)
		return 0;
	uint32_t cap = p->qcap ? p->qcap : 64;
	while (cap < need)
		cap *= 2;
	struct weft__pkt *nq = malloc(sizeof *nq * cap);
	if (!nq)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->qlen; i++)
		nq[i] = p->q[(p->qhead + i) & (p->qcap - 1)];
	free(p->q);
	p->q = nq;
	p->qcap = cap;
	p->qhead = 0;
	return 0;
}

static inline void q_push(weft_port *p, const struct weft__pkt *k)
{
	p->q[(p->qhead + p->qlen) & (p->qcap - 1)] = *k;
	p->qlen++;
	/* relaxed: a hint for posts and spinning gets; the queue itself is under the lock. */
	weft__store_rlx(&p->ovf, p->qlen);
}

static inline uint32_t q_take(weft_port *p, weft_completion *out, uint32_t max)
{
	uint32_t n = 0;
	for (; n < max && p->qlen; n++) {
		struct weft__pkt k = p->q[p->qhead];
		p->qhead = (p->qhead + 1) & (p->qcap - 1);
		p->qlen--;
		out[n] = (weft_completion){k.bytes, k.key, k.ov};
	}
	weft__store_rlx(&p->ovf, p->qlen); /* relaxed: as in q_push */
	return n;
}

#endif
