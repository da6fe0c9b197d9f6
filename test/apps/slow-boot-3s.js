// Every worker takes 3 s (of the simulator's time too) to boot: a reload to
// it leaves the old generation serving alone for that long. Answers / with its pid.
export default async function createApp(ctx) {
  await ctx.sleep(3000);
  return (req, res) => res.end(String(ctx.pid));
}
