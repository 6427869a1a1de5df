#pragma once
/// An open-addressing hash map (linear probing, one flat array) for the per-frame tables of
/// the packet steps: a lookup is one hash and, mostly, one cache line, with no allocation
/// per entry. Hand-written because Debian 12's Boost (1.74) predates
/// boost::unordered_flat_map and std::unordered_map allocates a node per key.
///
/// Keys are compared with ==; the caller passes the key's hash (computed once per frame).
/// There is no erase: an entry whose value the caller considers dead is dropped by
/// compact(), which the caller runs when the table is full of them.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace netplay {

template <class K, class V>
class FlatMap {
 public:
  explicit FlatMap(size_t capacity = 1024) { reset(capacity); }

  V* find(const K& k, uint64_t h) {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.h == h && s.k == k) return &s.v;
    }
  }

  /// The value of `k`, inserted (value-initialised) when absent; null when the map already
  /// holds `limit` keys.
  V* find_or_insert(const K& k, uint64_t h, size_t limit) {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (!s.used) {
        if (size_ >= limit) return nullptr;
        if ((size_ + 1) * 2 > slots_.size()) {
          grow(slots_.size() * 2);
          return find_or_insert(k, h, limit);
        }
        s.used = true;
        s.h = h;
        s.k = k;
        s.v = V{};
        ++size_;
        return &s.v;
      }
      if (s.h == h && s.k == k) return &s.v;
    }
  }

  size_t size() const { return size_; }

  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.used) f(s.k, s.v);
  }

  /// Keeps only the entries for which keep(value) is true.
  template <class P>
  void compact(P&& keep) {
    std::vector<Slot> old;
    old.swap(slots_);
    reset(old.size());
    for (const Slot& s : old)
      if (s.used && keep(s.v)) *find_or_insert(s.k, s.h, SIZE_MAX) = s.v;
  }

 private:
  struct Slot {
    uint64_t h = 0;
    K k{};
    V v{};
    bool used = false;
  };

  void reset(size_t capacity) {
    size_t n = 16;
    while (n < capacity) n *= 2;
    slots_.assign(n, Slot{});
    mask_ = n - 1;
    size_ = 0;
  }

  void grow(size_t capacity) {
    std::vector<Slot> old;
    old.swap(slots_);
    reset(capacity);
    for (const Slot& s : old)
      if (s.used) *find_or_insert(s.k, s.h, SIZE_MAX) = s.v;
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace netplay
