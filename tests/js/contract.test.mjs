// The contract suite in Node, on the memory store (Node has no IndexedDB).
import { test } from 'node:test';
import * as ferry from 'ferry';
import { cases } from '../contract/suite.js';

const run = `${process.pid}-${Date.now()}`;
const env = { name: (label) => `${label}-${run}` };

for (const { name, run: body } of cases) {
  test(name, () => body(ferry, env));
}
