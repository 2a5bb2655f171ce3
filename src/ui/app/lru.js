// lru-cache's LRUCache as codemirror-promql's completion cache uses it (new LRUCache({ttl}), get, set,
// has: entries expire ttl ms after they were set), in place of lru-cache's 20 KB (build.mjs aliases the
// package here). The cache holds one entry per metric or label name completed.
export class LRUCache {
  constructor({ ttl }) {
    this.ttl = ttl;
    this.map = new Map();
    this.sets = 0;
  }

  get(key) {
    const e = this.map.get(key);
    if (e && e.until < Date.now()) this.map.delete(key);
    else if (e) return e.value;
    return undefined;
  }

  has(key) {
    return this.get(key) !== undefined;
  }

  set(key, value) {
    if (++this.sets % 64 === 0) {
      const now = Date.now();
      for (const [k, e] of this.map) if (e.until < now) this.map.delete(k);
    }
    this.map.set(key, { value, until: Date.now() + this.ttl });
    return this;
  }

  delete(key) {
    return this.map.delete(key);
  }

  clear() {
    this.map.clear();
  }
}
