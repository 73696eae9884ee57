/**
 * Work deferred to the end of the current event-loop turn (Node's check phase, after the poll
 * phase has run every ready socket's callback), in the order it was asked for, under one
 * `setImmediate` per turn for all of it.
 *
 * The runner's replies to APISIX and the mirror's batched copies go this way: a turn's replies
 * leave together, so a peer asleep in epoll is woken once per turn rather than once per reply
 * (docs/performance.md, "Mirror dispatch, fourteenth pass"). Work asked for while the turn's
 * list runs joins the same list and runs in the same check phase (a bare `setImmediate` from
 * there would wait for the next turn, behind another poll).
 *
 * One list per thread (a mirror worker has its own module instance). The callbacks are the
 * runner's own and do not throw; should one throw, the rest of the list stays queued for the
 * next turn and the error propagates as it would from a bare `setImmediate`.
 */

const queue: Array<() => void> = [];
let running = false;
let scheduled = false;

/** Runs `fn` at the end of this turn, after everything asked for before it. */
export function atEndOfTurn(fn: () => void): void {
  queue.push(fn);
  if (!running && !scheduled) {
    scheduled = true;
    setImmediate(runQueue);
  }
}

function runQueue(): void {
  scheduled = false;
  running = true;
  let i = 0;
  try {
    // `queue.length` is read on every step: callbacks may append to it.
    for (; i < queue.length; i++) queue[i]!();
  } finally {
    running = false;
    if (i >= queue.length) {
      queue.length = 0;
    } else {
      // A callback threw: drop what ran (the thrower included) and keep the rest for the next turn.
      queue.splice(0, i + 1);
      if (queue.length > 0) {
        scheduled = true;
        setImmediate(runQueue);
      }
    }
  }
}
