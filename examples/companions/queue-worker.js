// A companion given as a module: drover runs it as its own process and calls
// its export; the process lives as long as it has work going.
export default function queueWorker() {
  let jobs = 0;
  setInterval(() => console.log(`processed job ${++jobs}`), 1000);
  process.on('SIGTERM', () => {
    console.log(`stopping after ${jobs} jobs`);
    process.exit(0);
  });
}
