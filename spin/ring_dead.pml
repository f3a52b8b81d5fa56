/*
 * Promela model of the robust ring protocol (GOSYNC_FEATURE_CHAN_ROBUST):
 * reservations in the slot's sequence (PUSHING | id, POPPING | id, HOLE),
 * a participant that dies at every step of a push or a pop, and the
 * kernel's repair (kmod/chan.c: ring_repair, ring_skip_holes, ring_push,
 * ring_pop; lib/chan.c: fast_push, fast_pop). The protocol is the comment
 * above GOSYNC_CHAN_POS_MASK in include/uapi/gosync.h. spin/chan.pml
 * checks the flags, the kernel's queues and the kicks around the ring;
 * this model checks what the reservations add: that a death anywhere
 * neither wedges the ring nor duplicates, tears or reorders a value.
 *
 * What is modelled:
 *  - a ring of CAP = 2 slots: @tail, @head (positions), per slot a
 *    sequence and a value. Sequence encoding (a byte): 2p free for p,
 *    2p + 1 holding p's value, PUSHING | id, POPPING | id (| HOLE),
 *    HOLE | (2p + 1).
 *  - survivor P (id 1) sends 1, 2, 3; survivor Q (id 2) receives until P
 *    is done, D is done (or dead and repaired) and the ring is empty.
 *    Each tries the fast path (one step per access to the page) and,
 *    when it fails, the kernel: one step under the lock that blocks until
 *    it can push (pop), as a kernel sleeper does until it is served.
 *  - diers D (id 3) and E (id 4; -DND=1 leaves E out) each make one
 *    push (of 5, of 6) or one pop, and may die after each of their
 *    steps (so E may also die popping D's hole, or pushing or popping
 *    around it); a death runs the repair of that id (its close of the
 *    fd at exit, under the lock: one step). A push claimed and never
 *    published has had half a value (99) written into its slot.
 *
 * What is abstracted: the flags and kicks (spin/chan.pml), RING_TRIES
 * (a survivor that finds the slot reserved by another goes to the
 * kernel at once), position wrap-around, the kernel's own reservations
 * (its push and pop are one step under the lock: a user step between
 * its swap and its release would find the slot reserved and retry).
 * 1.4 M states, a few seconds.
 *
 * Properties:
 *  (1) a value is taken (head moved past it) at most once, only after
 *      it was published, never the half value; P's values in order;
 *  (2) a popper reads out the value that its position held when it took
 *      it (nobody freed or refilled the slot meanwhile);
 *  (3) survivors make progress: every run ends with P and Q done (a
 *      wedged ring is an invalid end state), with all of P's values
 *      taken, by Q or by a dier (a value a dier took is lost with it);
 *  (4) a dier's value is taken only if it was published, and is taken
 *      if it was.
 *
 * Mutations that the check catches (-D, each fails):
 *  -DNO_REPAIR: nobody repairs: Q or P waits for ever (3).
 *  -DREPAIR_FREES_CLAIMED: a claimed, unpublished push is given back as
 *    free (2p) instead of a hole: the receiver waits at p for ever (3).
 *  -DREPAIR_RESTORES_ALL_POPS: POPPING is always put back as full, even
 *    once @head moved: the value is taken twice (1).
 *  -DCLAIM_BEFORE_RESERVE: the old order (swap @tail, then mark the
 *    slot): a death between them leaves an anonymous claim (3).
 */
#define CAP		2
#define PUSHING		64
#define POPPING		128
#define HOLE		32
#define IDM		7
#define HALF		99
#ifndef ND
#define ND		2	/* diers: D (id 3, value 5), E (id 4, value 6) */
#endif

#define BIT(v)		(1 << (v))

byte tpos, head;
byte seq[CAP];
byte val[CAP];

/* Ghost state. */
byte published;			/* values published (bit per value) */
byte taken;			/* values taken */
byte lastp;			/* P's last value taken */
bool pdone;
byte ddone;			/* diers done, or dead and repaired */
byte dpublished;		/* values the diers published */
byte holes;			/* the kernel's count: gates ring_skip_holes */

#define VALUE_AT_HEAD	(seq[head % CAP] == 2 * head + 1)
#define HOLE_AT_HEAD	(seq[head % CAP] == (HOLE | (2 * head + 1)))
#define FREE_AT_TAIL	(seq[tpos % CAP] == 2 * tpos)
#define QDONE		(pdone && ddone == ND && tpos == head)

inline note_take(v)
{
	assert(v != HALF && v != 0);		/* (1) never a half value */
	assert(published & BIT(v));		/* (1) published first */
	assert(!(taken & BIT(v)));		/* (1) once */
	if
	:: v <= 3 -> assert(v == lastp + 1); lastp = v	/* (1) in order */
	:: else -> skip
	fi;
	taken = taken | BIT(v)
}

/* ring_skip_holes(): pass holes at the head (kernel, under the lock). */
inline skip_holes()
{
	do
	:: holes > 0 && HOLE_AT_HEAD ->
		seq[head % CAP] = 2 * (head + CAP);
		head++
	:: else -> break
	od
}

/* ring_repair() of one slot i for @id. */
inline fix_slot(i, id)
{
	s = seq[i];
	if
	:: (s & (PUSHING | POPPING)) && (s & IDM) == id ->
		off = (i + CAP - head % CAP) % CAP;
		p = head + off;
		if
		:: s & PUSHING ->
			if
			:: p == tpos && tpos - head < CAP -> seq[i] = 2 * p
			:: else ->
				assert(off < tpos - head);
#ifdef REPAIR_FREES_CLAIMED
				seq[i] = 2 * p
#else
				seq[i] = HOLE | (2 * p + 1);
				holes++
#endif
			fi
		:: else ->
#ifdef REPAIR_RESTORES_ALL_POPS
			seq[i] = (s & HOLE) | (2 * p + 1)
#else
			if
			:: off == 0 && tpos != head -> seq[i] = (s & HOLE) | (2 * p + 1)
			:: else -> seq[i] = 2 * p
			fi
#endif
		fi
	:: else -> skip
	fi;
	s = 0; off = 0; p = 0
}

inline repair(id)
{
	atomic {
#ifndef NO_REPAIR
		fix_slot(0, id);
		fix_slot(1, id);
		skip_holes();
#endif
		ddone++
	}
}

/* The kernel's push of v for a survivor: blocks until it can. */
inline k_push(v)
{
	do
	:: atomic {
		(FREE_AT_TAIL || (holes > 0 && HOLE_AT_HEAD)) ->
		skip_holes();
		if
		:: FREE_AT_TAIL ->
			val[tpos % CAP] = v;
			seq[tpos % CAP] = 2 * tpos + 1;
			published = published | BIT(v);
			tpos++;
			break
		:: else -> skip		/* holes passed: look again */
		fi
	   }
	od
}

/* The kernel's pop for a survivor: blocks until a value, or Q is done. */
inline k_pop(done)
{
	atomic {
		(VALUE_AT_HEAD || (holes > 0 && HOLE_AT_HEAD) || QDONE) ->
		skip_holes();
		if
		:: VALUE_AT_HEAD ->
			x = val[head % CAP];
			note_take(x);
			seq[head % CAP] = 2 * (head + CAP);
			head++;
			x = 0
		:: QDONE -> done = 1
		:: else -> skip		/* holes passed: look again */
		fi
	}
}

proctype pusher()
{
	byte v = 1, t, s;

	do
	:: v > 3 -> break
	:: else ->
		/* fast_push: read @tail and its slot */
		atomic {
			t = tpos;
			s = seq[t % CAP]
		}
		if
		:: s != 2 * t -> goto slow	/* full, or reserved by another */
		:: else -> skip
		fi;
		/* reserve */
		atomic {
			if
			:: seq[t % CAP] == 2 * t -> seq[t % CAP] = PUSHING | 1
			:: else -> goto slow
			fi
		}
		/* claim: only the holder of slot(tail) moves @tail */
		atomic { assert(tpos == t); tpos = t + 1 }
		/* write, publish */
		atomic {
			val[t % CAP] = v;
			seq[t % CAP] = 2 * t + 1;
			published = published | BIT(v)
		}
		goto next;
slow:
		k_push(v);
next:
		v++; t = 0; s = 0
	od;
	pdone = 1
}

proctype popper()
{
	byte h, s, v, x;
	bool done;

	do
	:: done -> break
	:: else ->
		atomic {
			h = head;
			s = seq[h % CAP]
		}
		if
		:: s == 2 * h + 1 || s == (HOLE | (2 * h + 1)) -> skip
		:: else -> goto slow	/* empty, a push or another pop */
		fi;
		atomic {
			if
			:: seq[h % CAP] == s -> seq[h % CAP] = POPPING | (s & HOLE) | 2
			:: else -> goto slow
			fi
		}
		/* only the holder of slot(head) moves @head */
		atomic {
			assert(head == h);
			head = h + 1;
			if
			:: !(s & HOLE) -> v = val[h % CAP]; note_take(v)
			:: else -> skip
			fi
		}
		/* read out, free */
		atomic {
			assert((s & HOLE) || val[h % CAP] == v);	/* (2) */
			seq[h % CAP] = 2 * (h + CAP)
		}
		goto next;
slow:
		k_pop(done);
next:
		h = 0; s = 0; v = 0
	od
}

/* A dier: one push of @dv or one pop, with a death possible after every step. */
proctype dier(byte id; byte dv)
{
	byte t, h, s, v, p, off;

	if
	:: goto push
	:: goto pop
	fi;
push:
	atomic { t = tpos; s = seq[t % CAP] }
	if
	:: s != 2 * t -> goto out	/* gives up: no room */
	:: else -> skip
	fi;
#ifdef CLAIM_BEFORE_RESERVE
	atomic {
		if
		:: tpos == t && seq[t % CAP] == 2 * t -> tpos = t + 1
		:: else -> goto out
		fi
	}
	if :: goto dead :: skip fi;
	atomic { seq[t % CAP] = PUSHING | id }
#else
	atomic {
		if
		:: seq[t % CAP] == 2 * t -> seq[t % CAP] = PUSHING | id
		:: else -> goto out
		fi
	}
	if :: goto dead :: skip fi;
	atomic { assert(tpos == t); tpos = t + 1 }
#endif
	if :: goto dead :: skip fi;
	atomic { val[t % CAP] = HALF }		/* half of the value written */
	if :: goto dead :: skip fi;
	atomic {
		val[t % CAP] = dv;
		seq[t % CAP] = 2 * t + 1;
		published = published | BIT(dv);
		dpublished = dpublished | BIT(dv)
	}
	goto out;
pop:
	atomic { h = head; s = seq[h % CAP] }
	if
	:: s == 2 * h + 1 || s == (HOLE | (2 * h + 1)) -> skip
	:: else -> goto out
	fi;
	atomic {
		if
		:: seq[h % CAP] == s -> seq[h % CAP] = POPPING | (s & HOLE) | id
		:: else -> goto out
		fi
	}
	if :: goto dead :: skip fi;
	atomic {
		assert(head == h);
		head = h + 1;
		if
		:: !(s & HOLE) -> v = val[h % CAP]; note_take(v)
		:: else -> skip
		fi
	}
	if :: goto dead :: skip fi;
	atomic {
		assert((s & HOLE) || val[h % CAP] == v);	/* (2) */
		seq[h % CAP] = 2 * (h + CAP)
	}
	goto out;
dead:
	repair(id);
	goto end;
out:
	ddone++;
end:
	skip
}

init
{
	atomic {
		seq[0] = 0;
		seq[1] = 2;
		run pusher();
		run popper();
		run dier(3, 5);
#if ND > 1
		run dier(4, 6)
#endif
	}
	/* (3) everyone ends: the survivors with all of P's values taken. */
	(_nr_pr == 1);
	assert(pdone && ddone == ND);
	assert((taken & (BIT(1) | BIT(2) | BIT(3))) == (BIT(1) | BIT(2) | BIT(3)));
	/* (4) a dier's value: taken exactly when it was published. */
	assert((taken & (BIT(5) | BIT(6))) == dpublished)
}
