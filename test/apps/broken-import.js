// Fails while loading, like an app with a bad import.
throw new Error('this app cannot load: missing DATABASE_URL');
