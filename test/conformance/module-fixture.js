// A module for the importModule conformance case: it counts its evaluations.
globalThis.droverFixtureLoads = (globalThis.droverFixtureLoads ?? 0) + 1;
export const answer = 42;
