export async function runInit(_args: readonly string[]): Promise<number> { return 1; }
