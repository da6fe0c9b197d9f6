// A new release that boots, then dies of an uncaught error on its first
// request: it breaks only under traffic. The second process to load it in
// this host (module state is per host in the simulator) takes 5 s to boot,
// so that a reload to it stays under way while the others die.
let boots = 0;

export default async function createApp(ctx) {
  if (++boots === 2) await ctx.sleep(5000);
  return () => {
    queueMicrotask(() => {
      throw new Error('crash-on-request: boom');
    });
  };
}
