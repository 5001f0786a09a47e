'use strict';
// A tiny TOML writer for test configurations: nested tables, arrays of tables, scalars and
// arrays of scalars. Enough for `HubConfig` (config/src/lib.rs); not a general TOML library.

function scalar(v) {
  if (typeof v === 'string') return JSON.stringify(v); // JSON string escapes are valid TOML basic strings
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(scalar).join(', ')}]`;
  throw new Error(`unsupported TOML value: ${JSON.stringify(v)}`);
}

const isTable = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isTableArray = (v) => Array.isArray(v) && v.length > 0 && v.every(isTable);

function toToml(obj, prefix = '') {
  const lines = [];
  const nested = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || v === null) continue;
    if (isTable(v) || isTableArray(v)) nested.push([k, v]);
    else lines.push(`${k} = ${scalar(v)}`);
  }
  for (const [k, v] of nested) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (isTable(v)) {
      lines.push('', `[${name}]`, toToml(v, name));
    } else {
      for (const item of v) lines.push('', `[[${name}]]`, toToml(item, name));
    }
  }
  return lines.join('\n').replace(/^\n+/, '');
}

module.exports = { toToml };
