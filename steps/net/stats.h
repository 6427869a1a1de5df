#pragma once
/// Summaries of repeated measurements (round trips, query times, request times): min, max,
/// mean, deviation and nearest-rank percentiles, as steps with a `count` report them.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace netplay::stats {

struct Summary {
  size_t n = 0;
  double min = 0, max = 0, avg = 0, p50 = 0, p90 = 0, p99 = 0;
  /// Deviation as iputils ping reports it (mdev): sqrt(mean(x^2) - mean(x)^2).
  double mdev = 0;
};

/// The nearest-rank percentile `p` (0..100) of sorted `v`: the smallest value with at least
/// p% of the values at or below it. 0 for an empty list.
inline double percentile_sorted(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return v[std::min(i, v.size() - 1)];
}

inline Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  double n = static_cast<double>(v.size());
  s.avg = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double sum2 = std::accumulate(v.begin(), v.end(), 0.0, [](double a, double x) { return a + x * x; });
  s.mdev = std::sqrt(std::max(0.0, sum2 / n - s.avg * s.avg));
  s.p50 = percentile_sorted(v, 50);
  s.p90 = percentile_sorted(v, 90);
  s.p99 = percentile_sorted(v, 99);
  return s;
}

/// `ms` rounded to microseconds, so facts do not carry floating-point noise.
inline double round_ms(double ms) { return std::round(ms * 1000.0) / 1000.0; }

}  // namespace netplay::stats
