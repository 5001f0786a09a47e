'use strict';
// Tests that the real hub cannot pass yet are marked, not deleted: each mark names an entry in
// e2e/KNOWN_FAILURES.md. Against the reference server they run as ordinary tests.
//
// `pending(id)` returns a value for node:test's `todo` option: the reason string when the hub
// under test is the real one (the test runs, but its failure does not fail the suite), or false.
// Set E2E_STRICT=1 to run every marked test as an ordinary one.

const fs = require('node:fs');
const path = require('node:path');
const { IMPL } = require('./hub');

const FILE = path.join(__dirname, '..', 'KNOWN_FAILURES.md');

function pending(id) {
  if (IMPL !== 'hub' || process.env.E2E_STRICT) return false;
  const text = fs.existsSync(FILE) ? fs.readFileSync(FILE, 'utf8') : '';
  if (!text.includes(`{#${id}}`)) throw new Error(`pending("${id}"): no "{#${id}}" entry in e2e/KNOWN_FAILURES.md`);
  return `known failure, see e2e/KNOWN_FAILURES.md#${id}`;
}

module.exports = { pending };
