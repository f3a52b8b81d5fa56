/*
 * spin/mutex.pml with a thread that may die at any step, and the
 * kernel's death handling (robust Mutex): see "Death" there. Signals
 * are left out to keep the run short (they are checked without deaths
 * in mutex.pml); -DSIGNALS=1 on mutex.pml -DDEATH runs both (27M
 * states, about 80 s, 1.2 GB).
 */
#define DEATH		1
#define SIGNALS		0
#include "mutex.pml"
