// Mints Common Access Tokens with Eyevinn's @eyevinn/cat (npm), not tollgate, for the
// interop fixtures: `node mint.mjs <fixtures dir>` reads keys.json (the TEST HS256 key
// scripts/cat-fixtures.py made) and writes cases-eyevinn.json beside it, in the same
// shape as cases.json (token, request, time, expected verdict).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CAT } from '@eyevinn/cat';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node mint.mjs <fixtures dir>');
const keys = JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8'));
// The request and time every case is presented with: scripts/cat-fixtures.py's.
const { now, request } = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'))[0];
const version = JSON.parse(readFileSync(new URL('./node_modules/@eyevinn/cat/package.json', import.meta.url))).version;

const hsKeys = { hs: Buffer.from(keys.hs.key_hex, 'hex') };
// With the CWT tag (61), and without it (the library's other mode).
const tagged = new CAT({ keys: hsKeys, expectCwtTag: true });
const untagged = new CAT({ keys: hsKeys, expectCwtTag: false });
const base = { iss: 'fixture-issuer', iat: now - 10, exp: now + 60 };
const mint = (claims, generator = tagged) =>
  generator.generateFromJson({ ...base, ...claims }, { type: 'mac', alg: 'HS256', kid: 'hs', generateCwtId: true });

// base64 -> base64url without padding (the library answers with standard base64).
const url = (b64) => b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

const specs = [
  ['valid', {}, 'ok'],
  // Untagged, the library writes the claims as hex text (not COSE): refused unless the
  // policy allows that form.
  ['valid_untagged', {}, 'malformed', untagged],
  ['valid_untagged_hex_text_allowed', {}, 'ok', untagged, { hex_text_payload: true }],
  ['catnip_prefix', { catnip: ['192.0.2.0/24'] }, 'ok'],
  ['catnip_other_address', { catnip: ['198.51.100.1'] }, 'ip'],
  ['catu_query_other_order', { catu: { query: { 'exact-match': 'a=1' } } }, 'ok'],
  ['expired', { exp: now - 100 }, 'expired'],
  ['catu_path_prefix', { catu: { path: { 'prefix-match': '/vod/movie/' } } }, 'ok'],
  ['catu_path_prefix_other_path', { catu: { path: { 'prefix-match': '/vod/other/' } } }, 'scope'],
  ['catu_extension_and_host', { catu: { extension: { 'exact-match': '.m4s' }, host: { 'suffix-match': 'example.com' } } }, 'ok'],
  ['catm_post_only', { catm: ['POST'] }, 'method'],
  ['catr_header', { catr: { type: 'header', 'header-name': 'cta-common-access-token', expadd: 120, deadline: 60 } }, 'ok'],
  ['catif_on_exp', { exp: now - 100, catif: { exp: [307, { Location: 'https://auth.example.net/?CAT=' }, 'hs'] } }, 'expired'],
  ['wrong_issuer', { iss: 'someone-else' }, 'issuer'],
];

const cases = [];
for (const [name, claims, expect, generator, policy] of specs) {
  const token = url(await mint(claims, generator));
  cases.push({ name: `eyevinn_${name}`, generator: `@eyevinn/cat ${version}`, token, now, request, expect, ...(policy && { policy }) });
}
// Tampered: flip one bit inside the claims.
const raw = Buffer.from(cases[0].token, 'base64url');
raw[raw.indexOf('fixture-issuer')] ^= 1;
cases.push({ ...cases[0], name: 'eyevinn_tampered', token: raw.toString('base64url'), expect: 'bad_signature' });

// Tampered in the hex text: the MAC over the text catches it.
const hex = cases.find((c) => c.name === 'eyevinn_valid_untagged_hex_text_allowed');
const rawHex = Buffer.from(hex.token, 'base64url');
const at = rawHex.indexOf(Buffer.from('66697874', 'ascii')); // "fixt" of the issuer, as hex text
rawHex[at] = rawHex[at] === 0x36 ? 0x37 : 0x36;
cases.push({ ...hex, name: 'eyevinn_tampered_hex_text', token: rawHex.toString('base64url'), expect: 'bad_signature' });

writeFileSync(join(dir, 'cases-eyevinn.json'), JSON.stringify(cases, null, 1) + '\n');
console.log(`cat-fixtures: wrote ${cases.length} @eyevinn/cat ${version} cases to ${join(dir, 'cases-eyevinn.json')}`);
