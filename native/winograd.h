// Winograd F(m x m, 3 x 3) kernels of imagen-ts' native binding: WinogradInput, WinogradOutput and
// WinogradOutputGrad (see src/graph/lower-rules.ts for where they are used). Not a standalone header: ort_run.cc
// includes it after its kernel helpers (Tensor, input, output, parallelFor, intAttr, orThrow, the OrtApi entries).
#pragma once

// ---- Winograd F(m x m, 3 x 3), m = 2 or 4 (Lavin and Gray 2016), for "same" 3x3 convs (stride 1, pad 1) over
// images whose sides are multiples of m: a conv becomes t^2 products of channel matrices (ORT's batched MatMul,
// t = m + 2) between an input transform and an output transform: t^2 multiplies per m^2 outputs and channel
// pair instead of 9 m^2 (2.25x fewer for m = 2, 4x for m = 4). Tiles are m x m outputs, tile number
// (n * H/m + ty) * W/m + tx, whose t x t input window starts at row m ty - 1 and column m tx - 1 (zeros
// outside). Transformed tensors are [t^2, channels, N * tiles], entry k = t a + b for window position (a, b).
// Input: V = B^T d B. Output: y = A^T M A. Output gradient (for the weight gradient): A dy A^T.
template <int M>
struct Wino;

template <>
struct Wino<2> {
  static constexpr int T = 4;
  static constexpr float BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};

template <>
struct Wino<4> {
  static constexpr int T = 6;
  static constexpr float BT[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                     {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr float AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

struct WinoShape {
  int64_t n, c, h, w, th, tw, tiles;
};

WinoShape winoImage(const Tensor& x, int64_t m, const char* op) {
  if (x.dims.size() != 4 || x.dims[2] % m || x.dims[3] % m) throw std::runtime_error(std::string(op) + ": expected [N, C, H, W] with H and W multiples of the tile size m");
  WinoShape s{x.dims[0], x.dims[1], x.dims[2], x.dims[3], x.dims[2] / m, x.dims[3] / m, 0};
  s.tiles = s.n * s.th * s.tw;
  return s;
}

struct WinoKernel {
  int64_t m = 2, h = 0, w = 0;
};

void* createWinoKernel(const CustomOp*, const OrtApi*, const OrtKernelInfo* info) {
  auto* k = new WinoKernel();
  intAttr(info, "m", k->m);
  intAttr(info, "h", k->h);
  intAttr(info, "w", k->w);
  if (k->m != 2 && k->m != 4) throw std::runtime_error("Winograd: tile size m must be 2 or 4");
  return k;
}

// Calls body(m, tw) with the tile size m and, for the common sizes, the tile-row length tw as constants (so that
// the loops over a tile row unroll and vectorize); tw 0 for any other (the length then read at run time).
template <typename F>
void byTile(int64_t m, int64_t tw, F&& body) {
  auto rows = [&](auto mc) {
    switch (tw) {
      case 4: body(mc, std::integral_constant<int64_t, 4>()); break;
      case 8: body(mc, std::integral_constant<int64_t, 8>()); break;
      case 16: body(mc, std::integral_constant<int64_t, 16>()); break;
      case 32: body(mc, std::integral_constant<int64_t, 32>()); break;
      default: body(mc, std::integral_constant<int64_t, 0>());
    }
  };
  if (m == 4) rows(std::integral_constant<int, 4>());
  else rows(std::integral_constant<int, 2>());
}

// floor(u / m) and u mod m for u >= -1.
constexpr int floorDiv(int u, int m) { return u < 0 ? -1 : u / m; }
constexpr int floorMod(int u, int m) { return u - floorDiv(u, m) * m; }

// F(2x2, 3x3), hand-specialised (the generic form below ran 1.4-1.6x slower on these): one plane of WinogradInput:
// src [h, w] -> dst + k * stride (tile (ty, tx) at ty * tw + tx). First across the columns (. B), row by row: with
// e / o the row's even / odd columns, the window of tile tx reads columns o[tx - 1], e[tx], o[tx], e[tx + 1], so
// c_b = (o[tx - 1] - o[tx], e + o, o - e, e[tx] - e[tx + 1]); these go to the even rows' and the odd rows' arrays
// (ce after a zero row, co before one). Then down the rows (B^T .): tile row ty reads rows 2ty - 1, 2ty, 2ty + 1,
// 2ty + 2 = co[ty - 1], ce[ty], co[ty], ce[ty + 1], so each output is one pass over the whole plane's tiles with a
// fixed offset of a tile row.
template <int64_t TW>
void winoInputPlane2(const float* __restrict src, int64_t h, int64_t twRun, float* __restrict dst, size_t stride, float* __restrict buf) {
  const int64_t tw = TW ? TW : twRun, w = 2 * tw, th = h / 2, tiles = th * tw, n = tiles + tw;
  float* __restrict ev = buf;       // one row's even columns, with a zero after
  float* __restrict od = buf + tw + 1;  // one row's odd columns, with a zero before
  float* ce[4];                      // c_b of rows 0, 2, .., h - 2, then a zero row
  float* co[4];                      // a zero row, then c_b of rows 1, 3, .., h - 1
  for (int b = 0; b < 4; b++) {
    ce[b] = buf + 2 * (tw + 1) + b * n;
    co[b] = buf + 2 * (tw + 1) + (4 + b) * n;
    std::memset(ce[b] + tiles, 0, sizeof(float) * tw);
    std::memset(co[b], 0, sizeof(float) * tw);
  }
  ev[tw] = 0.0f;
  od[0] = 0.0f;
  for (int64_t y = 0; y < h; y++) {
    const float* __restrict row = src + y * w;
    for (int64_t j = 0; j < tw; j++) {
      ev[j] = row[2 * j];
      od[j + 1] = row[2 * j + 1];
    }
    size_t at = (y % 2 ? tw : 0) + (y / 2) * tw;
    float* __restrict c0 = (y % 2 ? co[0] : ce[0]) + at;
    float* __restrict c1 = (y % 2 ? co[1] : ce[1]) + at;
    float* __restrict c2 = (y % 2 ? co[2] : ce[2]) + at;
    float* __restrict c3 = (y % 2 ? co[3] : ce[3]) + at;
    for (int64_t j = 0; j < tw; j++) {
      c0[j] = od[j] - od[j + 1];
      c1[j] = ev[j] + od[j + 1];
      c2[j] = od[j + 1] - ev[j];
      c3[j] = ev[j] - ev[j + 1];
    }
  }
  for (int b = 0; b < 4; b++) {
    const float* __restrict e = ce[b];
    const float* __restrict o = co[b];
    float* __restrict d0 = dst + (0 + b) * stride;
    float* __restrict d1 = dst + (4 + b) * stride;
    float* __restrict d2 = dst + (8 + b) * stride;
    float* __restrict d3 = dst + (12 + b) * stride;
    for (int64_t i = 0; i < tiles; i++) d0[i] = o[i] - o[i + tw];
    for (int64_t i = 0; i < tiles; i++) d1[i] = e[i] + o[i + tw];
    for (int64_t i = 0; i < tiles; i++) d2[i] = o[i + tw] - e[i];
    for (int64_t i = 0; i < tiles; i++) d3[i] = e[i] - e[i + tw];
  }
}

// F(2x2, 3x3), hand-specialised (the generic form below ran up to 3x slower at 8x8): one plane of WinogradOutput: m
// + k * stride (tile (ty, tx) at ty * tw + tx) -> dst [h, 2 * tw], plus `add`. Down the rows (A^T .) in passes over
// the whole plane's tiles: s_b = m_0b + m_1b + m_2b, u_b = m_1b - m_2b - m_3b; then across (. A), each tile's two
// columns interleaved into rows 2ty (from s) and 2ty + 1 (from u).
template <int64_t TW>
void winoOutputPlane2(const float* __restrict m, size_t stride, int64_t h, int64_t twRun, float add, float* __restrict dst, float* __restrict buf) {
  const int64_t tw = TW ? TW : twRun, w = 2 * tw, tiles = (h / 2) * tw;
  float* s[4];
  float* u[4];
  for (int b = 0; b < 4; b++) {
    s[b] = buf + b * tiles;
    u[b] = buf + (4 + b) * tiles;
    const float* __restrict m0 = m + (0 + b) * stride;
    const float* __restrict m1 = m + (4 + b) * stride;
    const float* __restrict m2 = m + (8 + b) * stride;
    const float* __restrict m3 = m + (12 + b) * stride;
    float* __restrict sb = s[b];
    float* __restrict ub = u[b];
    for (int64_t i = 0; i < tiles; i++) {
      sb[i] = m0[i] + m1[i] + m2[i];
      ub[i] = m1[i] - m2[i] - m3[i];
    }
  }
  for (int64_t ty = 0; ty < h / 2; ty++) {
    for (int half = 0; half < 2; half++) {
      const float* __restrict q0 = (half ? u[0] : s[0]) + ty * tw;
      const float* __restrict q1 = (half ? u[1] : s[1]) + ty * tw;
      const float* __restrict q2 = (half ? u[2] : s[2]) + ty * tw;
      const float* __restrict q3 = (half ? u[3] : s[3]) + ty * tw;
      float* __restrict r = dst + (2 * ty + half) * w;
      for (int64_t i = 0; i < tw; i++) {
        r[2 * i] = q0[i] + q1[i] + q2[i] + add;
        r[2 * i + 1] = q1[i] - q2[i] - q3[i] + add;
      }
    }
  }
}

// F(2x2, 3x3), hand-specialised: one plane of WinogradOutputGrad: dy [h, 2 * tw] -> dst + k * stride (tile (ty, tx)
// at ty * tw + tx). Each tile's four values split into four arrays over the plane's tiles (row 2ty / 2ty + 1,
// column 2tx / 2tx + 1), then each output in one pass: down the rows (A .) p = (d0, d0 + d1, d0 - d1, -d1), the
// same across (. A^T).
template <int64_t TW>
void winoOutputGradPlane2(const float* __restrict src, int64_t h, int64_t twRun, float* __restrict dst, size_t stride, float* __restrict buf) {
  const int64_t tw = TW ? TW : twRun, w = 2 * tw, tiles = (h / 2) * tw;
  float* __restrict ee = buf;
  float* __restrict eo = buf + tiles;
  float* __restrict oe = buf + 2 * tiles;
  float* __restrict oo = buf + 3 * tiles;
  for (int64_t ty = 0; ty < h / 2; ty++) {
    const float* __restrict r0 = src + 2 * ty * w;
    const float* __restrict r1 = r0 + w;
    for (int64_t i = 0; i < tw; i++) {
      ee[ty * tw + i] = r0[2 * i];
      eo[ty * tw + i] = r0[2 * i + 1];
      oe[ty * tw + i] = r1[2 * i];
      oo[ty * tw + i] = r1[2 * i + 1];
    }
  }
  for (int a = 0; a < 4; a++) {
    // p_a of the even and the odd columns: a = 0: d0; 1: d0 + d1; 2: d0 - d1; 3: -d1 (d0, d1: the tile's rows).
    const float ka = a == 3 ? 0.0f : 1.0f, kb = a == 0 ? 0.0f : (a == 1 ? 1.0f : -1.0f);
    float* __restrict d0 = dst + (4 * a + 0) * stride;
    float* __restrict d1 = dst + (4 * a + 1) * stride;
    float* __restrict d2 = dst + (4 * a + 2) * stride;
    float* __restrict d3 = dst + (4 * a + 3) * stride;
    for (int64_t i = 0; i < tiles; i++) {
      float pe = ka * ee[i] + kb * oe[i];
      float po = ka * eo[i] + kb * oo[i];
      d0[i] = pe;
      d1[i] = pe + po;
      d2[i] = pe - po;
      d3[i] = -po;
    }
  }
}

// out[i] = sum over j < K of coef[j] * in[j][i] for i < n, zero coefficients skipped (coef is a row of a Wino
// matrix: with the loops over it unrolled, its values are constants and the sum has only its nonzero terms).
template <int K>
__attribute__((always_inline)) inline void combine(float* __restrict out, const float* const* in, const float* coef, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float acc = 0.0f;
#pragma GCC unroll 6
    for (int j = 0; j < K; j++) {
      if (coef[j] != 0.0f) acc += coef[j] * in[j][i];
    }
    out[i] = acc;
  }
}

// One plane of WinogradInput: src [h, w] -> dst + k * stride (tile (ty, tx) at ty * tw + tx). First across the
// columns (. B), row by row: the row split by column phase (column m j + q at ph[q][j + 1], zeros at both ends), window
// column s of tile tx is input column m tx - 1 + s = ph[(s - 1) mod m][tx + floor((s - 1) / m) + 1]. The t
// results of each row go to its row phase's arrays (row m i + p at rows[b][p][(i + 1) tw + tx], a zero tile
// row at both ends). Then down the rows (B^T .): window row r of tile row ty is row phase (r - 1) mod m at tile
// row ty + floor((r - 1) / m), so each output is one pass over the plane's tiles at fixed offsets.
template <int M, int64_t TW>
void winoInputPlane(const float* __restrict src, int64_t h, int64_t twRun, float* __restrict dst, size_t stride, float* __restrict buf) {
  if constexpr (M == 2) return winoInputPlane2<TW>(src, h, twRun, dst, stride, buf);
  using W = Wino<M>;
  constexpr int T = W::T;
  const int64_t tw = TW ? TW : twRun, w = M * tw, th = h / M, tiles = th * tw, plane = tiles + 2 * tw;
  float* ph = buf;                    // [M][tw + 2]
  float* rows = buf + M * (tw + 2);   // [T][M][plane]
  for (int q = 0; q < M; q++) ph[q * (tw + 2)] = ph[q * (tw + 2) + tw + 1] = 0.0f;
  for (int b = 0; b < T; b++) {
    for (int p = 0; p < M; p++) {
      float* r = rows + (b * M + p) * plane;
      std::memset(r, 0, sizeof(float) * tw);
      std::memset(r + tw + tiles, 0, sizeof(float) * tw);
    }
  }
  for (int64_t y = 0; y < h; y++) {
    const float* __restrict row = src + y * w;
    for (int q = 0; q < M; q++) {
      float* __restrict d = ph + q * (tw + 2) + 1;
      for (int64_t j = 0; j < tw; j++) d[j] = row[M * j + q];
    }
    const int64_t at = (y / M + 1) * tw;
    const int p = static_cast<int>(y % M);
#pragma GCC unroll 6
    for (int b = 0; b < T; b++) {
      float* __restrict out = rows + (b * M + p) * plane + at;
      const float* in[T];
      for (int s = 0; s < T; s++) in[s] = ph + floorMod(s - 1, M) * (tw + 2) + floorDiv(s - 1, M) + 1;
      combine<T>(out, in, W::BT[b], tw);
    }
  }
#pragma GCC unroll 6
  for (int a = 0; a < T; a++) {
    for (int b = 0; b < T; b++) {
      float* __restrict out = dst + (a * T + b) * stride;
      const float* in[T];
      for (int r = 0; r < T; r++) in[r] = rows + (b * M + floorMod(r - 1, M)) * plane + (floorDiv(r - 1, M) + 1) * tw;
      combine<T>(out, in, W::BT[a], tiles);
    }
  }
}

size_t winoInputScratch(int m, const WinoShape& s) { return m * (s.tw + 2) + (m + 2) * m * (s.th * s.tw + 2 * s.tw); }

// An image transform to [t^2, C, N * tiles] (WinogradInput, WinogradOutputGrad), a plane per task: plane(M, TW,
// src, shape, dst, stride, scratch) with scratch(M, shape) floats of scratch.
template <typename Scratch, typename Plane>
void imageTransform(void* kernel, OrtKernelContext* ctx, const char* op, Scratch scratch, Plane plane) {
  auto* k = static_cast<WinoKernel*>(kernel);
  Tensor x = input(ctx, 0);
  WinoShape s = winoImage(x, k->m, op);
  int64_t t = k->m + 2;
  Tensor v = output(ctx, 0, {t * t, s.c, s.tiles});
  size_t stride = static_cast<size_t>(s.c * s.tiles);
  byTile(k->m, s.tw, [&](auto mc, auto tile) {
    auto body = [&](size_t task) {
      int64_t n = static_cast<int64_t>(task) / s.c, c = static_cast<int64_t>(task) % s.c;
      thread_local std::vector<float> buf;
      buf.resize(scratch(decltype(mc)::value, s));
      float* dst = v.data + static_cast<size_t>(c) * s.tiles + static_cast<size_t>(n * s.th * s.tw);
      plane(mc, tile, x.data + task * s.h * s.w, s, dst, stride, buf.data());
    };
    parallelFor(ctx, static_cast<size_t>(s.n * s.c), body);
  });
}

// WinogradInput(x [N, C, H, W]) with attribute m -> V [t^2, C, N * tiles].
void computeWinogradInput(void* kernel, OrtKernelContext* ctx) {
  imageTransform(kernel, ctx, "WinogradInput", winoInputScratch, [](auto mc, auto tile, const float* src, const WinoShape& s, float* dst, size_t stride, float* buf) {
    winoInputPlane<decltype(mc)::value, decltype(tile)::value>(src, s.h, s.tw, dst, stride, buf);
  });
}

// One plane of WinogradOutput: m + k * stride (tile (ty, tx) at ty * tw + tx) -> dst [h, m tw], plus `add`. Down
// the rows (A^T .) in passes over the plane's tiles: s[p][b] = sum over a of AT[p][a] m_ab; then across (. A),
// output row m ty + p, column m tx + q = sum over b of AT[q][b] s[p][b].
template <int M, int64_t TW>
void winoOutputPlane(const float* __restrict mt, size_t stride, int64_t h, int64_t twRun, float add, float* __restrict dst, float* __restrict buf) {
  if constexpr (M == 2) return winoOutputPlane2<TW>(mt, stride, h, twRun, add, dst, buf);
  using W = Wino<M>;
  constexpr int T = W::T;
  const int64_t tw = TW ? TW : twRun, w = M * tw, th = h / M, tiles = th * tw;
#pragma GCC unroll 4
  for (int p = 0; p < M; p++) {
    for (int b = 0; b < T; b++) {
      float* __restrict out = buf + (p * T + b) * tiles;
      const float* in[T];
      for (int a = 0; a < T; a++) in[a] = mt + (a * T + b) * stride;
      combine<T>(out, in, W::AT[p], tiles);
    }
  }
  for (int64_t ty = 0; ty < th; ty++) {
#pragma GCC unroll 4
    for (int p = 0; p < M; p++) {
      float* __restrict r = dst + (M * ty + p) * w;
      const float* in[T];
      for (int b = 0; b < T; b++) in[b] = buf + (p * T + b) * tiles + ty * tw;
      for (int64_t j = 0; j < tw; j++) {
#pragma GCC unroll 4
        for (int q = 0; q < M; q++) {
          float acc = add;
#pragma GCC unroll 6
          for (int b = 0; b < T; b++) {
            if (W::AT[q][b] != 0.0f) acc += W::AT[q][b] * in[b][j];
          }
          r[M * j + q] = acc;
        }
      }
    }
  }
}

// WinogradOutput(M [t^2, O, N * tiles], bias [O] (optional)) with attributes m, h, w -> y [N, O, h, w].
void computeWinogradOutput(void* kernel, OrtKernelContext* ctx) {
  auto* k = static_cast<WinoKernel*>(kernel);
  Tensor m = input(ctx, 0);
  size_t inputs = 0;
  orThrow(fn<OrtStatus* (*)(const OrtKernelContext*, size_t*)>(kKernelContextGetInputCount)(ctx, &inputs));
  const OrtValue* biasValue = nullptr;
  if (inputs > 1) orThrow(fn<OrtStatus* (*)(const OrtKernelContext*, size_t, const OrtValue**)>(kKernelContextGetInput)(ctx, 1, &biasValue));
  Tensor bias;
  if (biasValue != nullptr) bias = describe(const_cast<OrtValue*>(biasValue));
  int64_t t = k->m + 2, th = k->h / k->m, tw = k->w / k->m;
  if (m.dims.size() != 3 || m.dims[0] != t * t || k->h % k->m || k->w % k->m || th < 1 || tw < 1 || m.dims[2] % (th * tw)) {
    throw std::runtime_error("WinogradOutput: expected [t^2, O, N * tiles] and h and w multiples of m");
  }
  int64_t o = m.dims[1], n = m.dims[2] / (th * tw);
  if (biasValue != nullptr && bias.count() != static_cast<size_t>(o)) throw std::runtime_error("WinogradOutput: bias does not match the channels");
  Tensor y = output(ctx, 0, {n, o, k->h, k->w});
  size_t stride = static_cast<size_t>(o * m.dims[2]);
  byTile(k->m, tw, [&](auto mc, auto tile) {
    constexpr int M = decltype(mc)::value;
    constexpr int64_t TW = decltype(tile)::value;
    auto body = [&](size_t task) {
      int64_t b = static_cast<int64_t>(task) / o, ch = static_cast<int64_t>(task) % o;
      thread_local std::vector<float> buf;
      buf.resize(M * (M + 2) * th * tw);
      const float* src = m.data + static_cast<size_t>(ch) * m.dims[2] + static_cast<size_t>(b * th * tw);
      winoOutputPlane<M, TW>(src, stride, k->h, tw, biasValue != nullptr ? bias.data[ch] : 0.0f, y.data + task * k->h * k->w, buf.data());
    };
    parallelFor(ctx, static_cast<size_t>(n * o), body);
  });
}

// One plane of WinogradOutputGrad: dy [h, m tw] -> dst + k * stride (tile (ty, tx) at ty * tw + tx). Each tile's
// m x m values split into m^2 arrays over the plane's tiles (e[p][q]: row m ty + p, column m tx + q); then for
// each window row a, down the rows (A .): g[q] = sum over p of AT[p][a] e[p][q]; and across (. A^T): output
// (a, b) = sum over q of AT[q][b] g[q].
template <int M, int64_t TW>
void winoOutputGradPlane(const float* __restrict src, int64_t h, int64_t twRun, float* __restrict dst, size_t stride, float* __restrict buf) {
  if constexpr (M == 2) return winoOutputGradPlane2<TW>(src, h, twRun, dst, stride, buf);
  using W = Wino<M>;
  constexpr int T = W::T;
  const int64_t tw = TW ? TW : twRun, w = M * tw, th = h / M, tiles = th * tw;
  float* e = buf;                   // [M][M][tiles]
  float* g = buf + M * M * tiles;   // [M][tiles]
  for (int64_t ty = 0; ty < th; ty++) {
    for (int p = 0; p < M; p++) {
      const float* __restrict row = src + (M * ty + p) * w;
      for (int q = 0; q < M; q++) {
        float* __restrict d = e + (p * M + q) * tiles + ty * tw;
        for (int64_t j = 0; j < tw; j++) d[j] = row[M * j + q];
      }
    }
  }
#pragma GCC unroll 6
  for (int a = 0; a < T; a++) {
    for (int q = 0; q < M; q++) {
      float* __restrict out = g + q * tiles;
      const float* in[M];
      float coef[M];
      for (int p = 0; p < M; p++) {
        in[p] = e + (p * M + q) * tiles;
        coef[p] = W::AT[p][a];
      }
      combine<M>(out, in, coef, tiles);
    }
    const float* in[M];
    for (int q = 0; q < M; q++) in[q] = g + q * tiles;
    for (int b = 0; b < T; b++) {
      float coef[M];
      for (int q = 0; q < M; q++) coef[q] = W::AT[q][b];
      combine<M>(dst + (a * T + b) * stride, in, coef, tiles);
    }
  }
}

// WinogradOutputGrad(dy [N, O, H, W]) with attribute m -> [t^2, O, N * tiles]: A dy A^T per m x m tile of dy (the
// adjoint of WinogradOutput's transform, for the weight gradient).
void computeWinogradOutputGrad(void* kernel, OrtKernelContext* ctx) {
  auto scratch = [](int m, const WinoShape& s) { return static_cast<size_t>((m * m + m) * s.th * s.tw); };
  imageTransform(kernel, ctx, "WinogradOutputGrad", scratch, [](auto mc, auto tile, const float* src, const WinoShape& s, float* dst, size_t stride, float* buf) {
    winoOutputGradPlane<decltype(mc)::value, decltype(tile)::value>(src, s.h, s.tw, dst, stride, buf);
  });
}
