// Block viewer steps of ui_test.mjs: `strata tools bucket web` over bucket A (every block, levels,
// rows, meta on click, marking for deletion writes deletion-mark.json), the same with
// --disable-admin-operations (no marking in the page, the API refuses), `strata compact`'s /blocks over
// the bucket it downsampled (a row per resolution), and `strata store`'s /loaded.
import fs from 'node:fs';
import path from 'node:path';

export async function blockViewerChecks({ check, assert, eq, open, done, apiGet, env }) {
  const W = env.UI_BUCKET_WEB, RO = env.UI_BUCKET_WEB_RO, S = env.UI_STORE_WEB, DIR = env.UI_BUCKET_DIR;
  const LEVEL2 = env.UI_LEVEL2;
  const bucketBlocks = () => fs.readdirSync(DIR).filter((d) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(d)).sort();
  const shown = (page) => page.$$eval('.block', (bs) => bs.map((b) => [b.dataset.ulid, +b.dataset.level]));

  await check('block_viewer_every_block_and_level', async () => {
    const page = await open(`${W}/blocks`);
    await page.waitForSelector('.block');
    const got = await shown(page);
    const dirs = bucketBlocks();
    assert(dirs.length >= 3, `bucket has ${dirs.length} blocks`);
    eq(got.map((g) => g[0]).sort(), dirs, 'blocks shown');
    eq(got.filter((g) => g[1] === 2).map((g) => g[0]), [LEVEL2], 'level-2 blocks');
    eq(got.filter((g) => g[1] === 1).length, dirs.length - 1, 'level-1 blocks');
    const rows = await page.$$eval('.block-row:not(.axis) .row-label', (ls) => ls.map((l) => l.textContent.trim()));
    eq(rows, ['{cluster="ui", replica="a"} raw', '{cluster="ui-history"} raw'], 'one row per stream and resolution');
    // Different levels get different colours.
    const colours = await page.$$eval('.block', (bs) => [...new Set(bs.map((b) => `${b.dataset.level}:${getComputedStyle(b).backgroundColor}`))]);
    eq(new Set(colours.map((c) => c.split(':')[1])).size, 2, `colours per level (${colours})`);
    // A click shows the block's meta as the API has it.
    const api = await apiGet(W, '/api/v1/blocks', { view: 'global' });
    const meta = api.data.blocks.find((b) => b.ulid === LEVEL2);
    await page.click(`.block[data-ulid="${LEVEL2}"]`);
    await page.waitForSelector(`.block-detail[data-ulid="${LEVEL2}"]`);
    eq(await page.textContent('.block-detail .num-series'), String(meta.stats.numSeries), 'series');
    eq(await page.textContent('.block-detail .num-samples'), String(meta.stats.numSamples), 'samples');
    eq(await page.textContent('.block-detail .level'), '2', 'level');
    eq(await page.textContent('.block-detail .resolution'), 'raw', 'resolution');
    eq(await page.textContent('.block-detail .source'), meta.thanos.source, 'source');
    eq(await page.$$eval('.block-detail .sources div', (d) => d.map((x) => x.textContent)), meta.compaction.sources, 'sources');
    await done(page, 'blocks');
  });

  await check('block_viewer_mark_deletion_writes_marker', async () => {
    const page = await open(`${W}/blocks`);
    await page.waitForSelector('.block');
    const target = bucketBlocks().find((d) => d !== LEVEL2);
    await page.click(`.block[data-ulid="${target}"]`);
    await page.fill('.mark-detail', 'browser test');
    const t0 = Math.floor(Date.now() / 1000);
    await page.click('.mark-deletion');
    await page.waitForSelector('.block-detail .alert.success');
    const f = path.join(DIR, target, 'deletion-mark.json');
    assert(fs.existsSync(f), `${f} not written`);
    const m = JSON.parse(fs.readFileSync(f, 'utf8'));
    eq([m.id, m.version, m.details], [target, 1, 'browser test'], 'deletion-mark.json');
    assert(m.deletion_time >= t0 - 1 && m.deletion_time <= t0 + 60, `deletion_time ${m.deletion_time}`);
    await page.waitForSelector(`.block.deleted[data-ulid="${target}"]`);
    await page.waitForSelector('.block-detail .marked-deletion');
    await done(page, 'blocks-marked');
  });

  await check('block_viewer_admin_disabled_refuses', async () => {
    const page = await open(`${RO}/blocks`);
    await page.waitForSelector('.block');
    const target = bucketBlocks().find((d) => d !== LEVEL2 && !fs.existsSync(path.join(DIR, d, 'deletion-mark.json')));
    await page.click(`.block[data-ulid="${target}"]`);
    await page.waitForSelector('.block-detail');
    eq(await page.$$eval('.mark-deletion, .mark-no-compaction', (b) => b.length), 0, 'mark buttons');
    const r = await fetch(`${RO}/api/v1/blocks/mark`, { method: 'POST', body: new URLSearchParams({ id: target, action: 'NO_COMPACTION' }) });
    const body = await r.json();
    eq([r.status, body.status, body.errorType], [400, 'error', 'bad_data'], 'refused');
    assert(!fs.existsSync(path.join(DIR, target, 'no-compact-mark.json')), 'no marker written');
    await done(page, 'blocks-admin-disabled');
  });

  // `strata compact` serves the viewer of the bucket it compacts: the raw block and the 5m block it made.
  await check('compact_block_viewer_downsampled', async () => {
    const C = env.UI_COMPACT_WEB, D = env.UI_DS_BUCKET_DIR;
    const page = await open(`${C}/blocks`);
    await page.waitForSelector('.block');
    const dirs = fs.readdirSync(D).filter((d) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(d)).sort();
    eq((await shown(page)).map((g) => g[0]).sort(), dirs, 'blocks shown');
    eq(await page.$$eval('.block-row:not(.axis) .row-label', (ls) => ls.map((l) => l.textContent.trim())),
      ['{cluster="ui-ds"} raw', '{cluster="ui-ds"} 5m'], 'a row per resolution');
    eq(await page.textContent('.brand .component'), 'compact', 'component');
    const api = await apiGet(C, '/api/v1/blocks', { view: 'global' });
    const ds = api.data.blocks.find((b) => b.thanos.downsample.resolution === 300000);
    await page.click(`.block[data-ulid="${ds.ulid}"]`);
    await page.waitForSelector(`.block-detail[data-ulid="${ds.ulid}"]`);
    eq(await page.textContent('.block-detail .resolution'), '5m', 'resolution');
    eq(await page.textContent('.block-detail .source'), ds.thanos.source, 'source');
    eq(await page.textContent('.block-detail .num-samples'), String(ds.stats.numSamples), 'samples');
    eq(await page.$$eval('.mark-deletion, .mark-no-compaction', (b) => b.length), 2, 'mark buttons');
    await done(page, 'compact-blocks');
  });

  await check('store_loaded_blocks', async () => {
    const page = await open(`${S}/loaded`);
    await page.waitForSelector('.block');
    const api = await apiGet(S, '/api/v1/blocks', { view: 'loaded' });
    const want = api.data.blocks.map((b) => b.ulid).sort();
    eq(want, bucketBlocks(), 'the store gateway has loaded every block of its bucket');
    eq((await shown(page)).map((g) => g[0]).sort(), want, 'loaded blocks shown');
    await done(page, 'store-loaded');
  });
}
