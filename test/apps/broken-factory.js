export default async function createApp() {
  throw new Error('factory refused to start');
}
