/*
 * Promela model of libgosync's ticketed Cond (lib/sync.c:
 * gs_cond_wait_until, cond_wait_ticket, cond_wake) on its Cond lot
 * (kmod/lot.c: lot_cond_wait, cond_check, cond_depart, cond_leave,
 * lot_cond_notify; the protocol comment at the head of lot.c; the Cond
 * lots in the uapi header). Checked by 'make check' with spin
 * (spin/check.sh): exhaustive safety search (assertions and invalid end
 * states).
 *
 * What is modelled:
 *  - the page's words TICKETS and NOTIFIED (bytes; at most 6 tickets are
 *    issued, so they never wrap). A waiter takes t = fetch_add(TICKETS)
 *    in one step "holding the mutex" (the mutex itself is abstracted:
 *    the take is atomic, and a Signal or Broadcast whose first load comes
 *    after the take is one the Wait happens before); then, until not
 *    -EINTR: a load of the mirror (NOTIFIED > t: return 0), then
 *    COND_WAIT(t);
 *  - COND_WAIT under lot->lock: cond_check (notified: 0; not issued or in
 *    a gap: -EINVAL, asserted never to happen to a live ticket), then
 *    queue, or, if the deadline has passed already, unlock and
 *    cond_depart(queued = false) as a later step; asleep: woken (0), the
 *    deadline passes (cond_depart(queued = true)), or a signal (-EINTR:
 *    leave the queue unless woken, same ticket, loop). cond_depart: served
 *    wins (woken, or the ticket notified), else leave: un-issue by CAS if
 *    newest, then un-issue the gaps this uncovers at the top, one CAS per
 *    step with lot->lock still held (a waiter's fetch_add, which does not
 *    take lot->lock, may come between them); or join, extend, merge or
 *    insert a gap run (cond_leave's if-chain);
 *  - cond_wake: two loads, TICKETS and NOTIFIED, in either order (C does
 *    not order the operands of ==), equal: return; else NOTIFY, in two
 *    steps under lot->lock: the READ_ONCE of TICKETS (fetch_adds may
 *    follow), then the rest with the mirror's store: Signal advances the
 *    count past gap fronts to the first live ticket and serves its
 *    waiter if parked; Broadcast moves the count to TICKETS, drops every
 *    gap, serves every parked waiter below it;
 *  - waiter 0 waits once, with no deadline; waiter 1 once or twice and
 *    waiter 2 once, each with a deadline that may pass at the call or at
 *    any moment while queued (or never); two signallers, each one Signal
 *    or one Broadcast; one signal (-EINTR) in the whole run; then init,
 *    once the signallers are done, Signals as long as anyone waits.
 *
 * Abstracted: the mutex and gs_cond_wait_until's misuse path (the mutex
 * not held); cancellation and a dying task (as the deadline); the clock;
 * -ENOSPC (never reached: see (e)); memory order (sequentially
 * consistent); the wake-up after the lock is dropped (w.woken is seen at
 * once).
 *
 * Checked (ghosts: tk[] each waiter's ticket, live who holds a ticket and
 * has neither returned nor left, ntf whose ticket is notified, pending[s]
 * who was waiting when call s began less those notified or gone since,
 * before[s] who held a ticket when s's NOTIFY read TICKETS):
 *  (a) exactly one: every ticket a notify reaches that is not a gap is
 *      held by exactly one live waiter, not yet notified; a skipped gap
 *      ticket by nobody; a Signal notifies at most one ticket; a wait
 *      returns 0 exactly when its own ticket was notified (none without
 *      one, none taken away by a deadline: a departing waiter is never a
 *      notified one); a Signal or Broadcast that notified nobody leaves
 *      nobody waiting that was waiting when it began (no lost Signal, also
 *      through the fast path's two loads); at the end nobody is notified
 *      and not returned: every notification was consumed by a 0-return;
 *  (b) FIFO: the ticket notified is never younger than a waiter still
 *      waiting (and tickets are taken in age order, asserted at the
 *      take, also when a ticket is issued again after its un-issue);
 *  (c) a Broadcast leaves nobody waiting that waited when it began; no
 *      notify reaches a ticket taken after its read of TICKETS, and no
 *      ticket is taken already notified;
 *  (d) a waiter with no deadline parked for ever is an invalid end state
 *      (init blocks too); a waiter that stayed parked is never found
 *      notified and not woken when its deadline passes; at the end every
 *      waiter has returned, nothing is parked, woken, gapped or unnotified
 *      (NOTIFIED == TICKETS);
 *  (e) whenever lot->lock is free: gap runs <= waiters still waiting
 *      (stronger than the "<= live + 1" asked for: each run lies below a
 *      live ticket, asserted), the runs ordered, apart, within
 *      [notified, tickets); every ticket in [notified, tickets) is in a
 *      gap and held by nobody, or held by one live waiter.
 *
 * Default run: 17.2M states, depth 747, about 56 s CPU (0.8 GB with
 * -DCOLLAPSE, which check.sh uses for every model; 80 s wall on this
 * 2-core machine under load). Larger runs, not in 'make check', also pass:
 * -DROUNDS=2 (every waiter once or twice: 80.3M states, 4 min 46 s CPU,
 * 3.7 GB); -DROUNDS0=2 -DROUNDS1=1 (7.4M states, 21 s). -DNS=1 and
 * -DEINTRS=0 shrink the run.
 *
 * Coverage: -DREACH=n fails at point n, to show it is reached: every point
 * is, in the default run, except 4 (a new gap run inserted before an
 * existing one), which needs four tickets out at once: a live ticket
 * above the later run and two live ones around the new one.
 *
 * Mutations (each a -D knob), default run, each caught:
 *  M1 -DNO_WAIT_CHECK (cond_check does not return 0 for a notified
 *     ticket) -> invalid end state (depth 444): waiter 0 parks, a signal
 *     (-EINTR) takes it off the queue, a notify reaches its ticket while
 *     it is not parked; its restarted COND_WAIT parks it for ever. (A
 *     waiter with a deadline trips the assertion of (d) instead.)
 *  M2 -DNO_GAP_SKIP (Signal spends itself on the gap's front) ->
 *     assertion (a) (depth 498): the notified ticket has no live holder.
 *  M3 -DNO_SERVED_WINS (cond_depart does not test w.woken) -> assertion
 *     (depth 411): a Broadcast served the parked waiter, its deadline
 *     passes and cond_depart takes it off the queue a second time (a
 *     list_del of an unlinked node in C).
 *  M4 -DNO_DEPART_CHECK (cond_depart does not test cond_is_notified) ->
 *     assertion (a) (depth 413): the deadline has passed at COND_WAIT;
 *     between cond_check and cond_depart a Broadcast notifies the ticket
 *     (not parked: not served); the waiter leaves with -ETIMEDOUT and the
 *     notification is lost.
 *  M5 -DNO_CASCADE (un-issue only the departing ticket) -> assertion (e)
 *     (depth 263): ticket 1 leaves (a gap), then ticket 2, the newest, is
 *     un-issued: the gap is left at the top with no waiter above it.
 *  M6 -DSTORE_NOT_CAS (the cascade compares the gap with the value it
 *     last stored instead of CAS on TICKETS) -> assertion (e)'s
 *     invariant (depth 300): a waiter takes the just un-issued ticket
 *     between the two steps; the store moves TICKETS below its ticket.
 *  M7 -DMIRROR_OFF_BY_ONE (the mirror test NOTIFIED >= t) -> assertion
 *     (a) (depth 453): a wait returns 0 with no notification of its own.
 *
 * No error in the C code was found: the protocol as written in lib/ and
 * kmod/ passes every run above.
 */
#define NW	3		/* waiters */
#ifndef NS
#define NS	2		/* signallers (besides the closing one, init) */
#endif
#ifdef ROUNDS			/* waits per waiter, at most */
#define ROUNDS0	ROUNDS
#define ROUNDS1	ROUNDS
#define ROUNDS2	ROUNDS
#endif
#ifndef ROUNDS0
#define ROUNDS0	1		/* waiter 0: no deadline */
#endif
#ifndef ROUNDS1
#define ROUNDS1	2		/* waiter 1: with a deadline */
#endif
#ifndef ROUNDS2
#define ROUNDS2	1		/* waiter 2: with a deadline */
#endif
#ifndef EINTRS
#define EINTRS	1		/* signal handlers run in the whole run */
#endif
#define MAXG	4

/* -DREACH=n: fails at coverage point n, to show that it is reached */
#ifndef REACH
#define REACH	0
#endif
#define REACHED(n)	assert(REACH != (n))

#define OK	0
#define ETIMEDOUT 1
#define EINTR	2

#define BIT(p)		(1 << (p))
#define HAS(m, p)	(((m) & BIT(p)) != 0)
#define WAITING		(live & ~ntf)
#define NWAITING	((WAITING & 1) + ((WAITING >> 1) & 1) + \
			 ((WAITING >> 2) & 1))

/* The lot's page and the kernel's lot (under klock, lot->lock). */
byte tickets;			/* word COND_TICKETS */
/*
 * lot->cond_notified and its mirror, word COND_NOTIFIED: the kernel writes
 * the mirror at the end of the same critical section, and every section
 * that changes the count is one step here after its read of TICKETS, so
 * one variable serves for both (a load of the mirror in C sees the count
 * of some earlier moment, as a load of this variable taken earlier does).
 */
byte notified;
byte ngaps;			/* lot->cond_gaps: [glo[i], ghi[i]) in order */
byte glo[MAXG];
byte ghi[MAXG];
bool klock;			/* lot->lock */
bool parked[NW];		/* on lot->parked (w.ticket = tk[id]) */
bool woke[NW];			/* w.woken */
byte eintrs = EINTRS;

/*
 * Ghosts. tk[p]: p's ticket while live; live: took a ticket and has
 * neither returned nor departed (left unnotified); ntf: p's current
 * ticket was notified. pending[s]: the waiters that were waiting (live,
 * not notified) when signaller s's call began -- a Signal or Broadcast
 * made under the mutex after their Wait took its ticket: the ticket take
 * happens before the call -- less those notified or departed since.
 * before[s]: the live waiters whose ticket was taken before the kernel
 * notify of s read TICKETS (cleared when one takes a new ticket).
 */
byte tk[NW];
byte live;
byte ntf;
byte pending[NS + 1];
byte before[NS + 1];
byte finished;
byte sdone;
#if REACH == 17
byte maxt;
#endif

/* Is ticket x in a gap? Into g. */
inline ingap(x)
{
	g = 0;
	j = 0;
	do
	:: j < ngaps ->
		if
		:: glo[j] <= x && x < ghi[j] -> g = 1
		:: else -> skip
		fi;
		j++
	:: else -> break
	od;
	j = 0
}

/*
 * Invariants, whenever lot->lock is free: the gap bound (e); the gaps
 * ordered, apart, within [notified, tickets) and below a live ticket;
 * every ticket in [notified, tickets) is either in a gap and held by
 * nobody or held by exactly one live waiter, not notified; a live
 * waiter's ticket is below tickets, notified exactly when below the count.
 */
inline invariants()
{
	assert(ngaps <= NWAITING);				/* (e) */
	assert(notified <= tickets);
	k = 0;
	do
	:: k < MAXG ->
		if
		:: k < ngaps ->
			assert(notified <= glo[k] && glo[k] < ghi[k] &&
			       ghi[k] < tickets);
			assert(k == 0 || ghi[k - 1] < glo[k])
		:: else -> assert(glo[k] == 0 && ghi[k] == 0)
		fi;
		k++
	:: else -> break
	od;
	k = notified;
	do
	:: k < tickets ->
		ingap(k);
		c = 0;
		do
		:: j < NW ->
			if
			:: HAS(live, j) && tk[j] == k ->
				c++; assert(!HAS(ntf, j))
			:: else -> skip
			fi;
			j++
		:: else -> break
		od;
		j = 0;
		assert(c == 1 - g);
		k++
	:: else -> break
	od;
	k = 0;
	do
	:: k < NW ->
		if
		:: HAS(live, k) ->
			assert(tk[k] < tickets);
			assert((tk[k] < notified) == HAS(ntf, k))
		:: else -> assert(!HAS(ntf, k) && tk[k] == 0)
		fi;
		assert(!parked[k] || HAS(live, k));
		k++
	:: else -> break
	od;
	k = 0; c = 0; g = 0
}

/* p is no longer waiting: no Signal or Broadcast owes it anything. */
inline unpend(p)
{
	j = 0;
	do
	:: j <= NS -> pending[j] = pending[j] & ~BIT(p); j++
	:: else -> break
	od;
	j = 0
}

/*
 * The kernel notifies ticket x (not a gap), for signaller s: exactly one
 * live waiter holds it, not yet notified, it took its ticket before the
 * notify read TICKETS, and no live waiter still waiting is older (a
 * smaller ticket: tickets are taken in order, asserted at the take).
 */
inline notify_ticket(x)
{
	c = 0;
	j = 0;
	do
	:: j < NW ->
		if
		:: HAS(live, j) && tk[j] == x -> c++; who = j
		:: else -> skip
		fi;
		assert(!HAS(WAITING, j) || tk[j] >= x);		/* (b) */
		j++
	:: else -> break
	od;
	assert(c == 1);						/* (a) */
	assert(!HAS(ntf, who) && HAS(before[s], who));		/* (a), (c) */
	ntf = ntf | BIT(who);
	unpend(who);
	c = 0
}

/* A departed ticket x is skipped: nobody holds it. */
inline skip_ticket(x)
{
	j = 0;
	do
	:: j < NW -> assert(!HAS(live, j) || tk[j] != x); j++
	:: else -> break
	od;
	j = 0
}

/* Drop gap i, shifting the later ones down. */
inline gap_del(i)
{
	j = i;
	do
	:: j + 1 < ngaps -> glo[j] = glo[j + 1]; ghi[j] = ghi[j + 1]; j++
	:: else -> break
	od;
	ngaps--;
	glo[ngaps] = 0; ghi[ngaps] = 0;
	j = 0
}

/* lot_serve() of the parked waiter with ticket x, if any (cond_find). */
inline serve(x)
{
	j = 0;
	do
	:: j < NW ->
		if
		:: parked[j] && tk[j] == x ->
			parked[j] = 0; woke[j] = 1
		:: else -> skip
		fi;
		j++
	:: else -> break
	od;
	j = 0
}

/* The call returns: the checks of cond_wake() below. */
inline wake_end()
{
	assert(!(all || !got) || pending[s] == 0);	/* (a), (c) */
	pending[s] = 0;
	got = 0
}

/*
 * lot_cond_notify(count = all ? GOSYNC_LOT_ALL : 1) by signaller s, in
 * two steps: the lock and the READ_ONCE of TICKETS (waiters may take
 * tickets meanwhile: the fetch-and-add is not under lot->lock), then the
 * rest, ending with the mirror's store, as one. got: it notified a ticket.
 */
inline kernel_notify()
{
	d_step { !klock -> klock = 1; tsnap = tickets; before[s] = live };
	d_step {
		got = 0;
		if
		:: all ->
			n = notified;
			do
			:: n < tsnap ->
				ingap(n);
				if
				:: g -> skip_ticket(n); REACHED(9)
				:: else -> notify_ticket(n); got = 1
				fi;
				n++
			:: else -> break
			od;
			if
			:: notified < tsnap -> notified = tsnap
			:: else -> skip
			fi;
			do
			:: ngaps > 0 -> gap_del(0)
			:: else -> break
			od;
			k = 0;
			do
			:: k < NW ->
				if
				:: parked[k] && tk[k] < notified ->
					parked[k] = 0; woke[k] = 1;
					REACHED(10)
				:: else -> skip
				fi;
				k++
			:: else -> break
			od
		:: else ->
			do
			:: notified < tsnap ->
				n = notified;
				notified++;
				if
#ifdef NO_GAP_SKIP
				:: ngaps > 0 && glo[0] == n ->
					/* spent on the departed ticket */
					glo[0]++;
					if
					:: glo[0] == ghi[0] -> gap_del(0)
					:: else -> skip
					fi;
					notify_ticket(n);
					break
#else
				:: ngaps > 0 && glo[0] == n ->
					skip_ticket(n);
					REACHED(8);	/* Signal skips */
					glo[0]++;
					if
					:: glo[0] == ghi[0] -> gap_del(0)
					:: else -> skip
					fi
#endif
				:: else ->
					notify_ticket(n);
					got = 1;
					serve(n);
					if	/* not parked yet, or -EINTR */
					:: !woke[who] -> REACHED(11)
					:: else -> skip
					fi;
					break
				fi
			:: else -> break
			od
		fi;
		if
		:: !got && !all -> REACHED(19)	/* nobody to notify */
		:: else -> skip
		fi;
		klock = 0;
		invariants();
		n = 0; tsnap = 0; k = 0; g = 0; who = 0; before[s] = 0;
		wake_end()
	}
}

/*
 * cond_wake(all ? GOSYNC_LOT_ALL : 1): if TICKETS == NOTIFIED (two
 * loads, in either order: C leaves the order of =='s operands
 * unspecified) return, else the kernel's notify. The call begins with
 * its first load; pending[s] is who was waiting then. A call that
 * notified nobody leaves nobody that was waiting then still waiting (no
 * lost Signal); a Broadcast leaves nobody of them waiting, whatever it
 * notified (c).
 */
inline cond_wake(choose)
{
	atomic {
		if
		:: choose -> all = 0		/* gs_cond_signal */
		:: choose -> all = 1		/* gs_cond_broadcast */
		:: else -> skip
		fi;
		pending[s] = WAITING;
		if
		:: ta = tickets; first = 0
		:: tn = notified; first = 1
		fi
	};
	atomic {
		if
		:: first == 0 -> tn = notified
		:: else -> ta = tickets
		fi;
		first = 0;
		if
		:: ta == tn ->
			REACHED(18);
			ta = 0; tn = 0; got = 0; wake_end(); goto woken
		:: else -> ta = 0; tn = 0
		fi
	};
	kernel_notify();
woken:
	skip
}

proctype signaller(byte s)
{
	byte ta, tn, tsnap, n, j, k, c, who;
	bool got, first, g, all;

	cond_wake(1);
	atomic { all = 0; sdone++ }
}

/*
 * cond_leave(t): un-issue t if it is the newest (CAS TICKETS t+1 -> t),
 * then the gaps that uncovers at the top, each by a CAS of its own, with
 * lot->lock held throughout (waiters' fetch-and-adds may come between:
 * cascade says more is to come); else record t in the gaps (join one,
 * merge two, or a new one).
 */
inline cond_leave()
{
	if
	:: tickets == t + 1 ->
		tickets = t;
		REACHED(21);		/* un-issued */
#ifdef STORE_NOT_CAS
		top = t;
#endif
#ifndef NO_CASCADE
		cascade = (ngaps > 0)
#endif
	:: else ->
		j = 0;
		do
		:: j == ngaps ->
			assert(ngaps < MAXG);
			k = ngaps;
			do
			:: k > j -> glo[k] = glo[k - 1]; ghi[k] = ghi[k - 1]; k--
			:: else -> break
			od;
			glo[j] = t; ghi[j] = t + 1;
			ngaps++;
			REACHED(5);		/* a new gap, last */
			break
		:: j < ngaps ->
			if
			:: ghi[j] == t ->
				ghi[j]++;
				if
				:: j + 1 < ngaps && glo[j + 1] == ghi[j] ->
					ghi[j] = ghi[j + 1];
					gap_del(j + 1);
					REACHED(1)	/* two gaps merge */
				:: else -> REACHED(2)	/* a gap grows up */
				fi;
				break
			:: else ->
				if
				:: glo[j] == t + 1 ->
					glo[j] = t; REACHED(3); break	/* down */
				:: glo[j] > t + 1 ->	/* C's if-chain */
					assert(ngaps < MAXG);
					k = ngaps;
					do
					:: k > j ->
						glo[k] = glo[k - 1];
						ghi[k] = ghi[k - 1];
						k--
					:: else -> break
					od;
					glo[j] = t; ghi[j] = t + 1;
					ngaps++;
					REACHED(4);	/* a new gap, first */
					break
				:: else -> j++
				fi
			fi
		od;
		j = 0; k = 0
	fi
}

/*
 * The wait returns ret (then mutex_lock, abstracted), in the step that
 * decided it: 0 exactly when the ticket was notified (a): no return
 * without a notification of its own ticket, no notification carried
 * away by a timeout.
 */
inline returns()
{
	assert((ret == OK) == HAS(ntf, id));			/* (a) */
	assert(!parked[id] && !woke[id]);
	if
	:: ret == OK ->
		live = live & ~BIT(id); ntf = ntf & ~BIT(id); tk[id] = 0
	:: else -> assert(!HAS(live, id))
	fi;
	t = 0; ret = 0; timed = 0; expired = 0; queued = 0;
	r++;
	if
	:: r < rounds -> skip		/* wait again */
	:: true -> r = rounds		/* or not */
	fi;
	if
	:: r == rounds -> finished++
	:: else -> skip
	fi
}

proctype waiter(byte id; bool timedw; byte rounds)
{
	byte t, ret, r, j, k, c;
	bool timed, expired, queued, cascade, g;
#ifdef STORE_NOT_CAS
	byte top;
#endif

again:
	/*
	 * Holding the mutex: t = fetch_add(TICKETS, 1), for a wait with or
	 * without a deadline. Tickets are taken in age order, and never one
	 * already notified: a waiter that starts after a notify is not
	 * covered by it (c).
	 */
	atomic {
		timed = timedw;
		t = tickets;
		tickets++;
#if REACH == 17
		REACHED(17 * (t < maxt));	/* a ticket issued again */
		maxt = (t + 1 > maxt -> t + 1 : maxt);
#endif
#if REACH == 7
		REACHED(7 * klock);	/* a ticket taken inside a section */
#endif
		assert(t >= notified);				/* (c) */
		j = 0;
		do
		:: j < NW -> assert(!HAS(live, j) || tk[j] < t); j++
		:: else -> break
		od;
		j = 0;
		do
		:: j <= NS -> before[j] = before[j] & ~BIT(id); j++
		:: else -> break
		od;
		j = 0;
		tk[id] = t;
		live = live | BIT(id);
		if
		:: !klock -> invariants()
		:: else -> skip
		fi
	};
	/* mutex_unlock; then cond_wait_ticket() until not -EINTR */
loop:
	/* the mirror: a ticket below NOTIFIED is notified */
	atomic {
		if
#ifdef MIRROR_OFF_BY_ONE
		:: notified >= t && notified > 0 -> ret = OK; returns(); goto out
#else
		:: notified > t -> REACHED(20); ret = OK; returns(); goto out
#endif
		:: else -> skip
		fi
	};
	/* COND_WAIT: cond_check under lot->lock, queue unless expired */
	atomic {
		!klock;
		if
		:: timed -> expired = 1	/* the deadline has passed */
		:: true
		fi;
		if
#ifndef NO_WAIT_CHECK
		:: t < notified -> ret = OK; returns(); goto out
#endif
		:: else ->
			ingap(t);
			assert(t < tickets && !g);	/* never -EINVAL */
			if
			:: !expired -> parked[id] = 1; queued = 1
			:: else -> queued = 0; REACHED(16); goto depart
			fi
		fi
	};
	/* asleep in gosync_wait_until() */
	if
	:: atomic { woke[id] -> woke[id] = 0; ret = OK; returns(); goto out }
	:: timed -> skip		/* the deadline passes while queued */
	:: atomic {
		eintrs > 0 && !klock ->	/* a signal: -EINTR, restarted */
			eintrs--;
			if
			:: woke[id] ->
				REACHED(13);
				woke[id] = 0; ret = OK; returns(); goto out
			:: else ->
				parked[id] = 0; queued = 0; expired = 0;
				REACHED(12);
				goto loop
			fi
	   }
	fi;
depart:
	/*
	 * cond_depart(queued): under lot->lock, served wins (woken, or the
	 * ticket notified before it could be served: not parked then),
	 * else leave unnotified; the ghost's departure is decided here too.
	 * The cascade of cond_leave() follows, lot->lock still held.
	 */
	atomic {
		!klock;
		if
#ifndef NO_SERVED_WINS
		:: woke[id] -> woke[id] = 0; ret = OK; REACHED(14)
#endif
		:: else ->
			if
			:: queued ->
				assert(parked[id]); parked[id] = 0;
				/* parked all along: a notify serves it */
				assert(t >= notified)		/* (d) */
			:: else -> skip
			fi;
			if
#ifndef NO_DEPART_CHECK
			:: t < notified -> ret = OK; REACHED(15)
#endif
			:: else ->
				ret = ETIMEDOUT;
				assert(!HAS(ntf, id));	/* (a): not lost */
				live = live & ~BIT(id);
				tk[id] = 0;
				unpend(id);
				cond_leave()
			fi
		fi;
		if
		:: cascade -> klock = 1
		:: else -> invariants(); returns(); goto out
		fi
	};
	do
	:: atomic {
		if
#ifdef STORE_NOT_CAS
		/* compares with the value it stored last, not TICKETS */
		:: ngaps > 0 && top == ghi[ngaps - 1] ->
			top = glo[ngaps - 1];
			tickets = top;
			gap_del(ngaps - 1)
#else
		:: ngaps > 0 && tickets == ghi[ngaps - 1] ->
			tickets = glo[ngaps - 1];
			gap_del(ngaps - 1);
			REACHED(6)		/* a gap un-issued */
#endif
		:: else ->
			cascade = 0; klock = 0; invariants(); returns();
			goto out
		fi
	   }
	od;
out:
	/* The wait has returned (then mutex_lock, abstracted). */
	if
	:: r < rounds -> goto again
	:: else -> skip
	fi
}

/*
 * init starts everyone, then, once the signallers are done, is the
 * closing signaller: it Signals while anybody waits (enough signals for
 * every waiter). A waiter asleep for ever (a lost wake-up) leaves init
 * blocked too: an invalid end state (d).
 */
init
{
	byte s = NS;
	byte ta, tn, tsnap, n, j, k, c, who;
	bool got, first, g, all;

	atomic {
		run waiter(0, 0, ROUNDS0); run waiter(1, 1, ROUNDS1);
		run waiter(2, 1, ROUNDS2);
		run signaller(0);
#if NS > 1
		run signaller(1)
#endif
	}
	sdone == NS;
	do
	:: finished == NW -> break
	:: NWAITING > 0 -> cond_wake(0)	/* all = 0: a Signal */
	od;
	/* Every waiter returned; nothing left waiting or gapped. */
	assert(live == 0 && ntf == 0 && ngaps == 0 && !klock &&
	       notified == tickets);
	assert(!parked[0] && !parked[1] && !parked[2] &&
	       !woke[0] && !woke[1] && !woke[2])
}
