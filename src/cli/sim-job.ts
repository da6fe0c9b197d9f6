// A `drover sim` job process: forked by src/cli/sim.ts with an IPC channel,
// it runs the tasks it is sent one at a time and sends each result back.
// Messages: in  {type: 'run', task} | {type: 'stop'}
//           out {type: 'ready'} | {type: 'result', result} | {type: 'crash', id, message}
// A host error that is not a simulated process's ExitSignal ends the job
// after it has reported the task it was running as crashed.
import { ignoreExitSignals, runTask, type Task } from './sim-run.js';
import { watchStalls } from './sim-stall.js';

let current: Task | null = null;

const send = (msg: unknown): Promise<void> =>
  new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, undefined, undefined, () => resolve());
  });

ignoreExitSignals((e) => {
  const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
  void send({ type: 'crash', id: current?.id ?? -1, message }).then(() => process.exit(1));
});

process.on('disconnect', () => process.exit(0));
process.on('message', (msg: { type: string; task?: Task }) => {
  if (msg.type === 'stop') process.exit(0);
  if (msg.type !== 'run' || !msg.task) return;
  const task = msg.task;
  current = task;
  runTask(task).then(
    (result) => {
      current = null;
      return send({ type: 'result', result });
    },
    (e: unknown) => send({ type: 'crash', id: task.id, message: e instanceof Error ? (e.stack ?? e.message) : String(e) }).then(() => process.exit(1)),
  );
});
// Armed before the first task, while this thread is idle (sim-stall.ts); the parent names the stall in argv.
void watchStalls(Number(process.argv[2]) || 10_000).then(() => send({ type: 'ready' }));
