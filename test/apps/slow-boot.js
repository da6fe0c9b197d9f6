// Every worker takes 500 ms (of the simulator's time too) to boot: its
// factory waits through the AppContext. Answers / with its pid.
export default async function createApp(ctx) {
  await ctx.sleep(500);
  return (req, res) => res.end(String(ctx.pid));
}
