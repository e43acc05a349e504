// Anchored codebook adaptation (DeDrift-style): re-estimates a codebook's centroids on new data with Lloyd steps
// that start from the old codebook, while every centroid stays tied to its old position, so that a code
// (a token already stored) keeps its meaning.
//
// One step: assign each vector to its nearest current centroid; then centroid k becomes
//     c_k = o_k + clip(m_k - o_k),   m_k = (sum of its n_k vectors + anchor * o_k) / (n_k + anchor),
// where o_k is the old centroid, `anchor` a prior weight in vectors (a code seen a few times barely moves) and clip
// shortens the move: with MoveLimit::Cell (the default) to the fraction `radius` of the way from o_k to the boundary
// of its old Voronoi cell along the move's direction; with MoveLimit::Ball to at most radius * h_k, h_k half the
// distance from o_k to its nearest other old centroid. With radius < 1 (Cell) or <= 1 (Ball) every new centroid
// lies inside its old Voronoi cell: it is nearer its own old position than any other code's, so decoding an old
// token with the new codebook gives a vector the old codebook would still have coded the same way. Codes without
// vectors go back to (stay at) their old centroid. Each step minimises sum |x - c_assigned|^2 + anchor * sum_k |c_k -
// o_k|^2 over the centroids inside their balls given the assignment, and the assignment step minimises it given the
// centroids, so that objective never increases. (DeDrift, Baranchuk et al. 2023, re-estimates centroids as the means of
// their assigned vectors; the anchor and the radius are what keeps stored codes meaningful here, where a decoder, not a
// search index, reads them.)
#pragma once

#include <cstdint>
#include <functional>
#include <limits>

#include "core/tensor.h"

namespace wavtok {

// How far a centroid may move: Ball = at most radius * h_k in any direction (isotropic); Cell = at most the
// fraction `radius` of the way from o_k to the boundary of its old Voronoi cell along the move's direction
// (further where the nearest codes are not in the way; inside the cell whenever radius < 1).
enum class MoveLimit { Ball, Cell };

struct CodebookAdaptOptions {
  int iterations = 10;  // Lloyd steps (each: assign, re-estimate); stops early when no assignment changes
  double anchor = 4.0;  // prior weight of the old centroid, in vectors (>= 0)
  double radius =
      0.5;  // largest move (>= 0): Ball: a fraction of h_k; Cell: a fraction of the way to the cell boundary
  MoveLimit limit = MoveLimit::Cell;
  // Called after each step with the step number (1-based) and the quantization MSE of the data before it.
  std::function<void(int step, double mse)> on_step;
};

struct CodebookAdaptStats {
  double mse_before = 0;     // mean over vectors and channels of |x - nearest old centroid|^2
  double mse_after = 0;      // the same with the adapted codebook
  int steps = 0;             // steps run
  int64_t codes_used = 0;    // codes with at least one vector in the last step
  int64_t codes_capped = 0;  // of those, codes whose move the limit shortened
  double mean_move = 0;      // mean over used codes of |c_k - o_k| / h_k (h_k as above, whatever the limit)
  double max_move = 0;
};

// codebook: [bins, dim]. data: channels-first [dim, n] (a latent's layout), n >= 1, finite. Returns the adapted
// codebook [bins, dim]. Throws an Error for empty or non-finite data, mismatched dims or bad options.
Tensor adapt_codebook(const Tensor& codebook, const float* data, int64_t n, const CodebookAdaptOptions& options,
                      CodebookAdaptStats* stats = nullptr);

// Quantization MSE of data [dim, n] against a codebook [bins, dim] (mean over vectors and channels of the squared
// distance to the nearest centroid); codes (optional, n entries) receive the nearest centroids.
double codebook_mse(const Tensor& codebook, const float* data, int64_t n, int32_t* codes = nullptr);

}  // namespace wavtok
