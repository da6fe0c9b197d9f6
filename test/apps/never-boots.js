// A factory that never resolves (it waits for something that never comes):
// no worker of it ever boots. Answers nothing.
export default async function createApp(ctx) {
  await ctx.sleep(1e9);
  return (req, res) => res.end('never');
}
