/*
 * Promela model of libgosync's Mutex (lib/sync.c: mutex_lock_until,
 * mutex_lock_slow, mutex_taken, mutex_handed_off, mutex_unlock) on its
 * parking lot (kmod/lot.c: GOSYNC_IOC_LOT_PARK / _UNPARK, with
 * GOSYNC_LOT_PARK_FRONT and GOSYNC_LOT_UNPARK_HANDOFF). Checked by 'make
 * check' with spin (spin/check.sh): exhaustive safety search (assertions
 * and invalid end states).
 *
 * What is modelled:
 *  - the mutex word: LOCKED, STARVING, HANDOFF and the waiter count
 *    (here from bit 3; three threads fit). Userspace changes it only by
 *    compare-and-swap, modelled as one atomic step that either stores the
 *    new value or, like atomic_compare_exchange, reloads the caller's
 *    snapshot. Loads are separate steps, so snapshots go stale as in C;
 *  - the kernel lot queue: PARK compares (word & LOCKED) == LOCKED and
 *    queues (at the tail, or at the front with PARK_FRONT, which a
 *    waiter uses after a plain wake-up) in one atomic step, else returns
 *    EAGAIN; a plain UNPARK(1) dequeues the head and marks it woken (its
 *    park returns 0); the hand-off UNPARK(1, HANDOFF, -(HANDOFF +
 *    WAITER)), in the same step under the lot's lock, adds to the word
 *    for the head it dequeues and marks it woken with token 1 (its park
 *    returns 1: it owns the mutex). A parked waiter whose deadline passes
 *    leaves the queue unless already woken, in which case the park
 *    returns the token, 0 or 1 ("served wins"); once the deadline has
 *    passed, a later park that passes the compare returns ETIMEDOUT at
 *    once;
 *  - mutex_unlock: LOCKED cleared and a plain unpark (normal mode), or
 *    HANDOFF set and the hand-off unpark (starvation mode with waiters);
 *    a hand-off that wakes nobody is withdrawn (HANDOFF and LOCKED
 *    cleared by CAS) and followed by a plain unpark;
 *  - a waiter whose park returned 1 only ends starvation mode, by CAS, if
 *    it did not starve or is the last waiter (mutex_handed_off); waiters
 *    never touch HANDOFF;
 *  - one signal (EINTR) in the whole run, which any parked thread may
 *    take: it leaves the queue unless woken and re-runs the loop;
 *  - the "waited over GS_MUTEX_STARVATION_NS" test after each park: a
 *    nondeterministic choice (time only grows: once true it stays true),
 *    so both normal mode and starvation mode with hand-off are explored.
 *
 * Threads: thread 0 locks and unlocks twice, thread 1 once, with no
 * deadline; thread 2 locks once with a deadline that may pass whenever it
 * is parked (gs_mutex_lock_until) and unlocks only if it got the mutex.
 * 2.6M states, about 4 s. Larger runs, not in 'make check', also pass:
 * -DROUNDS1=2 (thread 1 twice as well: 21.5M states, about 3 min) and
 * -DSIGNALS=2 (6.0M states). -DROUNDS=1 and -DSIGNALS=0 shrink the run.
 *
 * Abstracted: the spin phase of the slow path (it only re-reads the word,
 * which is no different from the thread running later); spurious failures
 * of the weak CAS (a reload of the same value); trylock; the deadline's
 * clock (only whether it has passed matters); cancellation (as the
 * deadline); the lot's other words.
 *
 * Checked (ghosts: counted[] who counted themselves in, owner who owns
 * the mutex, handing the unlocker whose HANDOFF is set, handoff_to the
 * waiter a hand-off made the owner; the kernel's add and every CAS set
 * them from what the word then says):
 *  1. mutual exclusion: at most one thread in the critical section;
 *  2. no lost wake-up: a thread parked for ever is an invalid end state
 *     (the untimed threads block on their park); when all threads are
 *     done, nobody is parked or woken and the word is 0;
 *  3. after every change of the word or the queue: the waiter count
 *     equals the number of threads counted in; HANDOFF is set only with
 *     LOCKED, and exactly while an unlocker is handing off (nobody else
 *     clears it: the withdrawal's "still ours" holds); the word says held
 *     and not handed off exactly when somebody owns the mutex; the queue
 *     length matches the parked threads. The thread entering the critical
 *     section owns the mutex and is counted out; every unlock finds the
 *     mutex held and not being handed off, in every value its loop reads
 *     (mutex_unlock never returns -EPERM to the holder);
 *  4. a newcomer (not counted in) takes the mutex only from a word with
 *     neither STARVING nor HANDOFF set;
 *  5. strict hand-off: once a hand-off unpark has woken a waiter, the next
 *     thread to own the mutex and enter the critical section is that
 *     waiter (the old userspace claim of HANDOFF let a waiter holding a
 *     stale normal-mode wake-up take it instead; the kernel's add leaves
 *     nothing to claim).
 *
 * Mutations tried (each a -D knob or a one-line change on a copy),
 * default run unless said:
 *  M1 mutex_unlock: no plain unpark after a withdrawn hand-off
 *     (-DNO_WAKE_AFTER_WITHDRAW) -> invalid end state (depth 84): T1
 *     holds; T0 counts in, parks, takes the signal, sets STARVING; T1's
 *     unlock sets HANDOFF and its hand-off unpark finds nobody; T0 parks
 *     (LOCKED still set); T1 withdraws and returns: T0 sleeps for ever
 *     on a free mutex.
 *  M2 kernel PARK without the compare (-DNO_PARK_COMPARE) -> invalid end
 *     state (depth 85): the classic lost wake-up.
 *  M3 hand-off add that does not count the waiter out (-DHANDOFF_SUB=4,
 *     i.e. add -HANDOFF) -> assertion (depth 88): the new owner enters
 *     the critical section still counted as a waiter (the word keeps a
 *     phantom waiter for ever).
 *  M4 hand-off add that clears LOCKED too (-DHANDOFF_SUB=13) ->
 *     assertion: the owner enters the critical section while the word
 *     says free; searched on past the first error (pan -c0), mutual
 *     exclusion and the strict hand-off property (5) fail as well:
 *     another thread takes the free word ahead of the chosen waiter.
 *  M5 kernel: a woken waiter whose deadline passes reports ETIMEDOUT
 *     (no "served wins", -DNO_SERVED_WINS) -> assertion (depth 69),
 *     waiter count: a waiter the hand-off already counted out (and made
 *     the owner) takes the deadline path and counts itself out again.
 *  M6 mutex_handed_off ends starvation mode always (drop the "did not
 *     starve or last waiter" test) -> no error: fairness, not safety.
 *  M7 deadline path: count out even when the mutex is free (drop "take it
 *     if free") -> no error. Harmless: a park returns ETIMEDOUT only when
 *     its waiter was not woken ("served wins"), so a timed-out waiter
 *     carries away no wake-up and no hand-off.
 *
 * Death (-DDEATH; spin/mutex_death.pml runs it, with -DSIGNALS=0, in
 * 'make check': 4.8M states, about 15 s, 320 MB). The robust Mutex
 * (lib/sync.c, kmod/lot.c robust lock words): the word also has
 * OWNERDEAD, NOT RECOVERABLE and the holder's owner handle (thread id +
 * 1), set by the CAS that takes it (mutex_owned()), cleared by the one
 * that frees it, replaced by the kernel's hand-off add
 * (GOSYNC_LOT_UNPARK_OWNER: minus the unlocker's, plus the head's).
 * Thread 1 may die between any two of its steps (a killer process
 * chooses when; Promela's unless): holding the mutex, between the CAS
 * that counts it in and its park, parked, woken and not yet running
 * (made the owner by a hand-off included), within its unlock, between
 * setting HANDOFF and the hand-off unpark, within the withdrawal. Then
 * the kernel: the park the kill interrupts leaves the queue unless
 * woken (a wake-up it got dies with it; its waiter count stays in the
 * word); the death walk (robust_sweep()) reaps a word held by the dead
 * thread (LOCKED, HANDOFF and the owner cleared, OWNERDEAD set) and
 * wakes one waiter, or wakes one waiter of a free word (all of them if
 * not recoverable); a survivor's robust park that finds the dead
 * thread's handle in the word reaps it and wakes one waiter itself. A
 * taker that finds OWNERDEAD gets -EOWNERDEAD and holds the mutex (the
 * critical section's checks count it as the holder), then calls
 * gs_mutex_consistent() or does not (its unlock makes the mutex not
 * recoverable: later and current lockers fail with -ENOTRECOVERABLE,
 * and a queued one counts itself out on the deadline path). The
 * survivors' lock takes no deadline but thread 2's.
 * Checked, besides 1-5 (with the dead thread out of the critical
 * section from its death on):
 *  6. the owner field names the holder (held, not handed off), or the
 *     unlocker handing off, and is 0 when the word is free; an unlock
 *     finds its own handle;
 *  7. OWNERDEAD and NOT RECOVERABLE appear only after the death; a not
 *     recoverable word is never held again;
 *  8. -EOWNERDEAD only after the death, never through a hand-off;
 *  9. survivors' progress: no survivor sleeps for ever (invalid end
 *     state) whatever the moment of the death; at the end the word is
 *     free with no owner, not starving, counting only a dead waiter.
 * Mutations (-DDEATH -DSIGNALS=0 plus the knob):
 *  R1 the death walk does not wake a waiter of a free word
 *     (-DNO_SWEEP_FREE_WAKE) -> invalid end state (depth 85): thread 1
 *     frees the word by its unlock's CAS and dies before its unpark;
 *     thread 0, parked, sleeps for ever.
 *  R2 a reaped word wakes nobody (-DNO_REAP_WAKE) -> invalid end state
 *     (depth 61): waiters parked on the dead holder's word.
 *  R3 the hand-off leaves the unlocker's handle in the word
 *     (-DNO_UNPARK_OWNER) -> assertion 6 (depth 143): the new owner's
 *     word names the unlocker, whose later death would reap a live
 *     holder's mutex.
 *  R4 the not-recoverable unlock wakes nobody (-DNO_LOST_WAKE_ALL) ->
 *     invalid end state (depth 96).
 *  R5 no holder check in the robust park (-DNO_PARK_CHECK) -> no error:
 *     with a death walk after every death the check only comes first.
 *  R6 the reap, and the unlock that finds nobody parked for its
 *     hand-off, keep STARVING (-DKEEP_STARVING) -> assertion 9 (depth
 *     157): the dead thread held the mutex in starvation mode (or died
 *     counted in as a waiter, whose count stays), the mutex stays
 *     starving while free, and every later locker would queue behind a
 *     lock that nobody holds (found by mutex_test's
 *     robust_stress_random_kills on the debug kernel: the parent's final
 *     trylock got -EBUSY).
 */
#define NT	3
#define NONE	255

#define L	1		/* MUTEX_LOCKED */
#define S	2		/* MUTEX_STARVING */
#define H	4		/* MUTEX_HANDOFF */
#define W	8		/* MUTEX_WAITER: the count is NW(word) */

#ifdef DEATH
/*
 * Robustness (see "Death" above): OWNERDEAD, NOTRECOVERABLE, and the
 * owner handle field (thread id + 1; the upper half of the C word).
 */
#define D	32		/* MUTEX_OWNERDEAD */
#define N	64		/* MUTEX_NOTRECOVERABLE */
#define O	128		/* one in the owner field */
#define OWN	(3 * O)		/* the owner field */
#define ME	((id + 1) * O)	/* our handle, in place */
#define NW(x)	((x) / W % 4)
#define OWNF(x)	((x) / O)
#define V	1		/* the thread that may die */
#define WORD_T	short
#else
#define D	0
#define N	0
#define OWN	0
#define ME	0
#define NW(x)	((x) / W)
#define WORD_T	byte
#endif

/* lot_park() results (and QUEUED: compared and queued, now asleep) */
#define OK	0		/* unparked */
#define HANDED	1		/* unparked by a hand-off */
#define EAGAIN	2
#define ETIMEDOUT 3
#define EINTR	4
#define QUEUED	5

/* The hand-off unpark's @add, negated: -(MUTEX_HANDOFF + MUTEX_WAITER). */
#ifndef HANDOFF_SUB
#define HANDOFF_SUB	(H + W)
#endif

WORD_T word;			/* word 0 of the lot's page */
bool counted[NT];		/* ghost: counted itself in */
byte cs;			/* threads in the critical section */
byte owner = NONE;		/* ghost: who owns the mutex (see invariants) */
byte handing = NONE;		/* ghost: unlocker whose HANDOFF is set */
byte handoff_to = NONE;		/* ghost: waiter a hand-off made the owner */
byte finished;

/*
 * The kernel's lot: parked threads in queue order; woke = w.woken,
 * token = w.token (1: the park returns 1, a hand-off).
 */
byte q[NT];
byte qlen;
bool woke[NT];
bool token[NT];
bool parked[NT];
#ifndef SIGNALS
#define SIGNALS	1
#endif
#ifndef ROUNDS
#define ROUNDS	2		/* thread 0's rounds */
#endif
#ifndef ROUNDS1
#define ROUNDS1	1		/* thread 1's rounds */
#endif
byte signals = SIGNALS;		/* signals left to deliver */
#ifdef DEATH
bool kill;			/* the killer struck: V dies at its next step */
bool dead;			/* ghost: V is dead (the kernel may see it) */
bool incs[NT];			/* ghost: in the critical section */
#endif

/*
 * Property 3, checked after every change of the word (by a CAS or the
 * kernel's hand-off) and of the queue.
 */
inline invariants()
{
	assert(NW(word) == counted[0] + counted[1] + counted[2]);
	assert(!(word & H) || (word & L));
	assert(((word & H) != 0) == (handing != NONE));
	assert((owner != NONE) == ((word & (L | H)) == L));
	assert(qlen == parked[0] + parked[1] + parked[2]);
#ifdef DEATH
	/* 6: the owner field names the holder, or the unlocker handing off */
	assert((word & L) || OWNF(word) == 0);
	assert((word & (L | H)) != L || OWNF(word) == owner + 1);
	assert(!(word & H) || OWNF(word) == handing + 1);
	/* 7: OWNERDEAD only after a death; not recoverable: never held */
	assert(!(word & (D | N)) || dead);
	assert(!(word & N) || !(word & (L | D)))
#else
	skip
#endif
}

/*
 * atomic_compare_exchange(&word, &st, nw). On success it also sets the
 * ghosts: counted[id]; the owner (taking LOCKED makes us the owner, and
 * only the owner may clear it or set HANDOFF); the unlocker handing off.
 */
inline cas(nw, cin)
{
	d_step {
		if
		:: word == st ->
			if
			:: !(st & L) && ((nw) & L) ->
				assert(owner == NONE); owner = id
			:: (st & (L | H)) == L && ((nw) & (L | H)) != L ->
				assert(owner == id); owner = NONE
			:: else -> skip
			fi;
			if
			:: !(st & H) && ((nw) & H) -> handing = id
			:: (st & H) && !((nw) & H) -> handing = NONE
			:: else -> skip
			fi;
			word = (nw); counted[id] = cin; ok = 1;
			invariants()
		:: else -> st = word; ok = 0
		fi
	}
}

/* mutex_taken(st, starving) into nw */
inline taken()
{
	nw = ((st | L) & ~H) - W;
	if
	:: !starving || NW(st) == 1 -> nw = nw & ~S
	:: else -> skip
	fi;
	nw = (nw & ~OWN) | ME		/* mutex_owned() */
}

/* Dequeue the head q[0] (an unpark chose it). */
inline qpop()
{
	parked[q[0]] = 0;
	q[0] = q[1]; q[1] = q[2]; q[2] = NONE;
	qlen--
}

/* Remove thread id from the queue (deadline or signal, not chosen). */
inline qremove()
{
	j = 0;
	do
	:: q[j] == id -> break
	:: else -> j++
	od;
	do
	:: j + 1 < qlen -> q[j] = q[j + 1]; j++
	:: else -> break
	od;
	qlen--;
	q[qlen] = NONE;
	parked[id] = 0;
	j = 0;
	invariants()
}

/*
 * lot_park(lot, 0, LOCKED, LOCKED, deadline, front ? PARK_FRONT : 0),
 * its first half: compare and queue (ret = QUEUED), or EAGAIN, or
 * ETIMEDOUT once the deadline has passed. The sleep is in lock().
 */
inline park()
{
	d_step {
		if
#ifdef NO_PARK_COMPARE
		:: false -> ret = EAGAIN
#else
		:: !(word & L) -> ret = EAGAIN
#endif
		:: else ->
			if
			:: expired -> ret = ETIMEDOUT
			:: else ->
				if
				:: front ->
					j = qlen;
					do
					:: j > 0 -> q[j] = q[j - 1]; j--
					:: else -> break
					od;
					q[0] = id
				:: else -> q[qlen] = id
				fi;
				qlen++;
				parked[id] = 1;
				ret = QUEUED;
				invariants()
			fi
		fi
	}
}

/* lot_wake(fd, 0, 1): plain unpark of the head. */
inline wake()
{
	d_step {
		if
		:: qlen > 0 ->
			woke[q[0]] = 1;
			qpop();
			invariants()
		:: else -> skip
		fi
	}
}

/* lot_wake(fd, 0, GOSYNC_LOT_ALL) (robust unlock only) */
inline wake_all()
{
	d_step {
		do
		:: qlen > 0 -> woke[q[0]] = 1; qpop()
		:: else -> break
		od;
		invariants()
	}
}

#ifdef DEATH

/*
 * The kernel's lot_reap_word() for dead V (in a d_step): a word held by
 * V (LOCKED, owner field V's; a hand-off V began included) is freed with
 * OWNERDEAD set and out of starvation mode. n = 1 if it did.
 */
inline reap()
{
	if
	:: (word & L) && OWNF(word) == V + 1 ->
#ifdef KEEP_STARVING
		word = (word & ~(L | H | OWN)) | D;
#else
		word = (word & ~(L | H | S | OWN)) | D;
#endif
		if
		:: owner == V -> owner = NONE
		:: else -> skip
		fi;
		if
		:: handing == V -> handing = NONE
		:: else -> skip
		fi;
		n = 1;
		invariants()
	:: else -> n = 0
	fi
}
#endif

/*
 * lot_unpark(fd, 0, 1, GOSYNC_LOT_UNPARK_HANDOFF, -(HANDOFF + WAITER))
 * into n: under the lot's lock, add to the word for the head, then mark
 * it woken with token 1. The ghosts follow what the word now says: the
 * head is counted out if the add took a waiter off, HANDOFF is no longer
 * the unlocker's once clear, and the head owns the mutex if the word
 * says held and not handed off. handoff_to records the waiter the kernel
 * chose, for the strict hand-off property.
 */
inline unpark_handoff()
{
	d_step {
		if
		:: qlen > 0 ->
			assert(handing == id && owner == NONE &&
			       handoff_to == NONE);
			n = NW(word);
			/* with UNPARK_OWNER: our handle out, the head's in */
#ifdef DEATH
#ifdef NO_UNPARK_OWNER
			word = word - HANDOFF_SUB;
#else
			word = word - HANDOFF_SUB - ME + (q[0] + 1) * O;
#endif
#else
			word = word - HANDOFF_SUB;
#endif
			if
			:: NW(word) < n -> counted[q[0]] = 0
			:: else -> skip
			fi;
			if
			:: !(word & H) -> handing = NONE
			:: else -> skip
			fi;
			if
			:: (word & (L | H)) == L -> owner = q[0]
			:: else -> skip
			fi;
			handoff_to = q[0];
			woke[q[0]] = 1;
			token[q[0]] = 1;
			qpop();
			n = 1;
			invariants()
		:: else -> n = 0
		fi
	}
}

/*
 * The mutex is ours (a CAS took it from snapshot st, or a hand-off):
 * properties 1, 4 and 5 (strict hand-off: after a hand-off, the next
 * thread into the critical section is the one the kernel chose).
 */
inline got_it()
{
	d_step {
		assert(handoff_to == NONE || handoff_to == id);	/* 5 */
		handoff_to = NONE;
		assert(cs == 0);	/* 1: mutual exclusion */
		assert(queued || !(st & (S | H)));	/* 4 */
		assert(owner == id && !counted[id]);	/* 3 */
#ifdef DEATH
		/* 8: -EOWNERDEAD only after a death; a hand-off never has it */
		assert(!(st & D) || (dead && ret != HANDED));
		took_dead = (st & D) != 0;
		incs[id] = 1;
#endif
		cs++;
		/* dead until the unlock */
		st = 0; nw = 0; ret = 0; queued = 0; starving = 0;
		front = 0; expired = 0; ok = 0
	}
}

/*
 * mutex_handed_off(): we own it; end starvation mode unless we starved
 * and others wait. Its load and CAS loop are one step here (see lock()).
 */
inline handed_off()
{
	assert(handoff_to == id);	/* the park returned 1 to it alone */
	st = word;
	if
	:: (st & S) && (!starving || NW(st) == 0) -> cas(st & ~S, 0)
	:: else -> skip
	fi
}

/*
 * mutex_lock_until(); res = 1: locked, 0: deadline. The fast path's CAS
 * from 0 and the slow path, without its spin phase.
 *
 * Each atomic block below is local computation on the snapshot st ending
 * in at most one access to shared state (a CAS), and a failed CAS retries
 * within the block: a failed CAS is only a load, and a load followed at
 * once by the next attempt is the same as the first attempt made later.
 * Plain loads (st = word) and parks are steps of their own, so decisions
 * that lead to a park are taken on a snapshot that may be stale, as in C.
 */
inline lock()
{
	atomic {
		st = 0;
		cas(L | ME, 0);
		if
		:: ok -> got_it(); res = 1; goto locked
		:: else -> skip		/* the failed CAS loaded st */
		fi
	};
loop:
	atomic {
#ifdef DEATH
		if
		:: st & N ->		/* -ENOTRECOVERABLE */
			notrec = 1;
			if
			:: queued -> goto deadline
			:: else -> res = 0; st = 0; goto locked
			fi
		:: else -> skip
		fi;
#endif
		if
		:: !(st & L) && (queued || !(st & S)) ->
			if
			:: queued -> taken()
			:: else -> nw = ((st | L) & ~OWN) | ME
			fi;
			cas(nw, 0);
			if
			:: ok -> got_it(); res = 1; goto locked
			:: else -> goto loop
			fi
		:: else -> skip
		fi;
		if
		:: !queued ->
			cas(st + W, 1);
			if
			:: ok -> st = st + W; queued = 1; nw = 0
			:: else -> goto loop
			fi
		:: queued && starving && !(st & S) ->
			cas(st | S, 1);
			if
			:: ok -> st = st | S
			:: else -> goto loop
			fi
		:: else -> skip
		fi
	}
#ifdef DEATH
	/*
	 * The robust park's holder check (robust_check_holder()), before
	 * the compare: a dead holder's word is reaped and a waiter woken;
	 * the park returns EAGAIN.
	 */
	d_step {
		if
#ifdef NO_PARK_CHECK
		:: false ->
#else
		:: dead && (word & L) && OWNF(word) == V + 1 ->
#endif
			reap(); wake(); ret = EAGAIN
		:: else -> skip
		fi
	}
	if
	:: ret != EAGAIN -> park()
	:: else -> skip
	fi;
#else
	park();
#endif
	if
	:: ret == QUEUED ->
		if
		:: d_step {
			woke[id] ->		/* unparked */
				woke[id] = 0;
				ret = token[id];	/* OK or HANDED */
				token[id] = 0
		   }
		:: d_step {
			timed ->		/* the deadline passes */
				expired = 1;
#ifdef NO_SERVED_WINS
				if
				:: parked[id] -> qremove()
				:: else -> woke[id] = 0; token[id] = 0
				fi;
				ret = ETIMEDOUT
#else
				if
				:: woke[id] ->
					woke[id] = 0;
					ret = token[id];
					token[id] = 0
				:: else -> qremove(); ret = ETIMEDOUT
				fi
#endif
		   }
		:: d_step {
			signals > 0 ->		/* a signal handler runs */
				signals--;
				if
				:: woke[id] ->
					woke[id] = 0;
					ret = token[id];
					token[id] = 0
				:: else -> qremove(); ret = EINTR
				fi
		   }
		fi
	:: else -> skip
	fi;
	atomic {
		if
		:: starving = 1		/* waited over GS_MUTEX_STARVATION_NS */
		:: skip
		fi;
		if
		:: ret == HANDED ->
			handed_off();
			got_it(); res = 1; goto locked
		:: ret == ETIMEDOUT -> goto deadline
		:: else ->
			if
			:: ret == OK -> front = 1	/* keep our place */
			:: else -> skip
			fi;
			ret = 0;
			st = word
		fi
	}
	goto loop;

deadline:
	/*
	 * Take the mutex if it is free, else count ourselves out. (The
	 * load before the loop is left out: a CAS from a stale st fails
	 * and loads the word.)
	 */
dl:
	atomic {
		if
		:: !(st & (L | N)) ->
			taken();
			cas(nw, 0);
			if
			:: ok -> got_it(); res = 1; goto locked
			:: else -> goto dl
			fi
		:: else ->
			if
			:: NW(st) == 1 -> nw = (st - W) & ~S
			:: else -> nw = st - W
			fi;
			cas(nw, 0);
			if
			:: ok ->
				res = 0; st = 0; nw = 0; ret = 0; queued = 0;
				starving = 0; front = 0; expired = 0
			:: else -> goto dl
			fi
		fi
	}
locked:
	skip
}

/*
 * mutex_unlock() by the holder. Locals are cleared once dead, so that
 * states differing only in dead values are not told apart.
 */
inline unlock()
{
	d_step {
		/* the critical section ends */
		assert(cs == 1 && owner == id && !counted[id]);
		cs--;
#ifdef DEATH
		incs[id] = 0;
#endif
		st = L | ME		/* the fast path's CAS: LOCKED, ours */
	};
ul:
	atomic {
		/*
		 * -EPERM for the holder: never. st is the expected LOCKED
		 * or a value a failed CAS loaded, stale or not.
		 */
		assert((st & (L | H)) == L);
#ifdef DEATH
		assert(OWNF(st) == id + 1);	/* 6: nobody else's */
		gone = (st & D) != 0;
#endif
		handoff = !gone && (st & S) && NW(st) > 0;
		if
		:: gone -> nw = (st & ~(L | D | S | OWN)) | N
		:: handoff -> nw = st | H
		:: else -> nw = st & ~(L | OWN)
		fi;
		cas(nw, 0);
		if
		:: !ok -> goto ul
		:: ok && NW(st) == 0 -> goto unlocked
		:: else -> skip
		fi
	}
	if
	:: gone ->		/* not recoverable: everybody up, to fail */
#ifndef NO_LOST_WAKE_ALL
		wake_all();
#endif
		goto unlocked
	:: handoff ->
		atomic {
			unpark_handoff();
			if
			:: n > 0 -> goto unlocked
			:: else -> skip
			fi
		}
		/*
		 * Nobody parked to take it: release it after all, and leave
		 * starvation mode (a dead waiter's count must not keep it
		 * starving with nobody to hand it to). HANDOFF is still ours
		 * (asserted); the load and the CAS loop are one step.
		 */
		atomic {
			assert(handing == id && (word & (L | H)) == (L | H));
			st = word;
#ifdef KEEP_STARVING
			cas(st & ~(H | L | OWN), 0)
#else
			cas(st & ~(H | L | OWN | S), 0)
#endif
		}
#ifdef NO_WAKE_AFTER_WITHDRAW
		goto unlocked
#endif
	:: else -> skip
	fi;
	wake();
unlocked:
	atomic { st = 0; nw = 0; n = 0; handoff = 0; gone = 0; ok = 0; res = 0 }
}

/*
 * The rounds of a thread: lock, and unlock if it got the mutex; one that
 * got it with -EOWNERDEAD makes it consistent first, or does not (then
 * its unlock makes the mutex not recoverable).
 */
inline rounds_of()
{
	for (r : 1 .. rounds) {
		lock();
		if
		:: res ->
#ifdef DEATH
			if
			:: took_dead -> took_dead = 0; consistent()
			:: took_dead -> took_dead = 0
			:: else -> skip
			fi;
#endif
			unlock()
		:: else ->
#ifdef DEATH
			assert(timed || notrec);
			notrec = 0
#else
			assert(timed)
#endif
		fi;
	}
}

#ifdef DEATH
/* gs_mutex_consistent() by the holder: its load and CAS loop, one step. */
inline consistent()
{
	atomic {
		st = word;
		assert((st & (L | D)) == (L | D) && owner == id);
		cas(st & ~D, 0);
		assert(ok);
		st = 0
	}
}
#endif

#define THREAD_LOCALS \
	byte n, j, ret, r; \
	WORD_T st, nw; \
	bool ok, res, queued, starving, front, expired, handoff, gone, took_dead, \
	     notrec

proctype thread(byte id; byte rounds; bool timed)
{
	THREAD_LOCALS;

	rounds_of();
	finished++
}

#ifdef DEATH
/*
 * Thread V, which may die between any two of its steps (the killer
 * decides when): holding the mutex, counted in before its park, parked,
 * woken but not yet running (a hand-off's owner included), unlocking,
 * handing off. Its death, then the kernel's death walk, as kmod/lot.c
 * does it on the exit of the thread or of its process: the park that
 * the kill interrupts leaves the queue unless woken (a wake-up it got
 * is lost with it; a dead waiter's count stays in the word, nothing
 * tracks it); then robust_sweep() reads the word: held by V, it is
 * reaped and a waiter woken; free, a waiter is woken (all of them if
 * not recoverable): V may have freed it and died before its unpark.
 */
proctype mortal(byte id; byte rounds; bool timed)
{
	THREAD_LOCALS;

	{
		rounds_of()
	} unless {
		kill ->
		d_step {
			if
			:: parked[id] -> qremove()
			:: else -> skip
			fi;
			woke[id] = 0; token[id] = 0;
			if
			:: handoff_to == id -> handoff_to = NONE
			:: else -> skip
			fi;
			if
			:: incs[id] -> cs--; incs[id] = 0
			:: else -> skip
			fi;
			dead = 1;
			st = 0; nw = 0; ret = 0; queued = 0; starving = 0;
			front = 0; expired = 0; handoff = 0; gone = 0; ok = 0;
			res = 0; took_dead = 0; notrec = 0; r = 0; j = 0
		};
		d_step {
			if
			:: word & L -> reap()	/* n: reaped */
#ifdef NO_REAP_WAKE
				; n = 0
#endif
			:: word & N -> n = 2	/* all */
#ifdef NO_SWEEP_FREE_WAKE
			:: else -> n = 0
#else
			:: else -> n = 1
#endif
			fi
		};
		if
		:: n == 2 -> wake_all()
		:: n == 1 -> wake()
		:: else -> skip
		fi;
		n = 0
	};
	finished++
}

proctype killer()
{
	if
	:: kill = 1
	:: skip
	fi
}
#endif

init
{
	q[0] = NONE; q[1] = NONE; q[2] = NONE;
	atomic {
		run thread(0, ROUNDS, 0);
#ifdef DEATH
		run mortal(1, ROUNDS1, 0);
		run killer();
#else
		run thread(1, ROUNDS1, 0);
#endif
		run thread(2, 1, 1)
	}
	/* Everybody got the mutex (or gave up): none sleeps for ever. */
	finished == NT;
#ifdef DEATH
	/*
	 * Survivors' progress: none sleeps for ever (the end state above);
	 * the word is free, its count the dead waiter's if V died counted
	 * in; OWNERDEAD or NOT RECOVERABLE only if V died.
	 */
	assert(!(word & (L | H | S)) && OWNF(word) == 0 &&
	       NW(word) == counted[0] + counted[1] + counted[2] &&
	       (dead || word == 0) && qlen == 0 && cs == 0 &&
	       owner == NONE && handing == NONE && handoff_to == NONE &&
	       !woke[0] && !woke[1] && !woke[2] &&
	       !token[0] && !token[1] && !token[2])
#else
	assert(word == 0 && qlen == 0 && cs == 0 && owner == NONE &&
	       handing == NONE && handoff_to == NONE &&
	       !woke[0] && !woke[1] && !woke[2] &&
	       !token[0] && !token[1] && !token[2])
#endif
}
