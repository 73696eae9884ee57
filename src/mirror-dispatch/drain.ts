/**
 * Waits, at shutdown, until the owner reports that nothing is left in flight or `graceMs` has
 * passed, whichever comes first. `hook` receives the callback to call once drained (and
 * undefined once the wait is over), so the owner can call it from its completion path.
 */
export async function drainWithin(graceMs: number, hook: (drained: (() => void) | undefined) => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    hook(resolve);
    timer = setTimeout(resolve, graceMs);
    timer.unref();
  });
  clearTimeout(timer);
  hook(undefined);
}
