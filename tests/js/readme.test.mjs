// Every example of pkg/README.md runs as it is.
import { test } from 'node:test';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const readme = await readFile(new URL('../../pkg/README.md', import.meta.url), 'utf8');
const examples = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

examples.forEach((code, index) => {
  const heading = readme.slice(0, readme.indexOf(code)).match(/## (.*)\n/g)?.pop()?.slice(3).trim();
  test(`pkg/README.md example ${index + 1} (${heading})`, async () => {
    const file = fileURLToPath(new URL(`./readme-example-${process.pid}-${index}.mjs`, import.meta.url));
    await writeFile(file, code);
    const log = console.log;
    console.log = () => {};
    try {
      await import(file);
    } finally {
      console.log = log;
      await rm(file);
    }
  });
});
