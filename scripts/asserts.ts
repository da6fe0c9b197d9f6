// Assertion density (issue 15, item 4; TigerBeetle's rule of two per
// function): for each file of the simulated kernel and of the runtime's
// state machines, its functions and the assert() calls in them.
//   node --import tsx scripts/asserts.ts        a table
// test/asserts.test.ts holds every listed file to ASSERTS_PER_FUNCTION.
//
// A function is what has a body of its own: a declaration, a method, a
// constructor, an accessor, or an arrow/function expression bound to a name
// (a const, a class field, an object's property). Callbacks passed inline
// are part of the function that passes them, as their asserts are.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..');

export const ASSERTS_PER_FUNCTION = 2;

/** The runtime's state machines (issue 15: "the runtime's state machines"). */
const STATE_MACHINES = [
  'src/runtime/companions/state.ts',
  'src/runtime/lanes/queue.ts',
  'src/runtime/arbiter/workers.ts',
  'src/runtime/arbiter/lanes.ts',
];

export function measuredFiles(): string[] {
  const sim = readdirSync(join(ROOT, 'src/sim'))
    .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
    .map((f) => `src/sim/${f}`);
  return [...sim, ...STATE_MACHINES];
}

export interface Density {
  readonly file: string;
  readonly functions: number;
  readonly asserts: number;
  /** Functions without a single assert, "name:line". */
  readonly bare: readonly string[];
}

const named = (n: ts.Node): boolean => {
  const p = n.parent;
  return ts.isVariableDeclaration(p) || ts.isPropertyDeclaration(p) || ts.isPropertyAssignment(p);
};

export function density(file: string, text = readFileSync(join(ROOT, file), 'utf8')): Density {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  let functions = 0;
  let asserts = 0;
  const bare: string[] = [];
  const visit = (n: ts.Node, counter: { n: number } | null): void => {
    let own = counter;
    const isFn = (ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isConstructorDeclaration(n) || ts.isGetAccessorDeclaration(n) || ts.isSetAccessorDeclaration(n) ||
      ((ts.isArrowFunction(n) || ts.isFunctionExpression(n)) && named(n))) && (n as ts.FunctionLikeDeclaration).body !== undefined;
    if (isFn) own = { n: 0 };
    if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'assert') {
      asserts++;
      if (own) own.n++;
    }
    ts.forEachChild(n, (c) => visit(c, own));
    if (isFn) {
      functions++;
      if (own!.n === 0) {
        const name = (n as { name?: ts.Node }).name?.getText(src) ?? ((n.parent as { name?: ts.Node }).name?.getText(src) ?? '(anonymous)');
        bare.push(`${name}:${src.getLineAndCharacterOfPosition(n.getStart(src)).line + 1}`);
      }
    }
  };
  visit(src, null);
  return { file, functions, asserts, bare };
}

if (process.argv[1] && relative(process.argv[1], import.meta.filename) === '') {
  const rows = measuredFiles().map((f) => density(f));
  let f = 0;
  let a = 0;
  console.log(`${'file'.padEnd(36)} ${'functions'.padStart(9)} ${'asserts'.padStart(8)} ${'per fn'.padStart(7)}  without any`);
  for (const r of rows) {
    f += r.functions;
    a += r.asserts;
    const per = r.functions === 0 ? Infinity : r.asserts / r.functions;
    console.log(`${r.file.padEnd(36)} ${String(r.functions).padStart(9)} ${String(r.asserts).padStart(8)} ${per.toFixed(2).padStart(7)}  ${r.bare.length}`);
  }
  console.log(`${'all'.padEnd(36)} ${String(f).padStart(9)} ${String(a).padStart(8)} ${(a / f).toFixed(2).padStart(7)}`);
}
