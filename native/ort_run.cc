// A small Node-API binding to ONNX Runtime's C API, loaded from onnxruntime-node's own libonnxruntime: sessions
// on the CPU provider whose runs can write outputs straight into caller-owned typed arrays. onnxruntime-node
// copies every output into a new ArrayBuffer; for a training step that is the weights and both optimizer
// moments each step (324 MB on the benchmark's U-Net), plus the garbage collections the new arrays cause.
//
// The C API is a table of function pointers (OrtApi) that only grows between releases; we address the entries
// we use by their position in it (see ApiIndex), so no ONNX Runtime header is needed to build this file, and
// init() checks the layout before anything else runs. Built by scripts/build-native.mjs.
#include <dlfcn.h>
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace {

struct OrtStatus;
struct OrtEnv;
struct OrtSession;
struct OrtSessionOptions;
struct OrtValue;
struct OrtMemoryInfo;
struct OrtTensorTypeAndShapeInfo;
struct OrtApi;
struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};

// Positions in OrtApi (each entry one function pointer), as declared in onnxruntime_c_api.h.
enum ApiIndex : int {
  kCreateStatus = 0,
  kGetErrorCode = 1,
  kGetErrorMessage = 2,
  kCreateEnv = 3,
  kCreateSessionFromArray = 8,
  kRun = 9,
  kCreateSessionOptions = 10,
  kSetOptimizedModelFilePath = 11,
  kSetSessionExecutionMode = 13,
  kEnableMemPattern = 16,
  kDisableMemPattern = 17,
  kSetSessionGraphOptimizationLevel = 23,
  kSetIntraOpNumThreads = 24,
  kSetInterOpNumThreads = 25,
  kCreateTensorWithDataAsOrtValue = 49,
  kGetTensorMutableData = 51,
  kGetTensorElementType = 60,
  kGetDimensionsCount = 61,
  kGetDimensions = 62,
  kGetTensorShapeElementCount = 64,
  kGetTensorTypeAndShape = 65,
  kCreateCpuMemoryInfo = 69,
  kReleaseStatus = 93,
  kReleaseMemoryInfo = 94,
  kReleaseSession = 95,
  kReleaseValue = 96,
  kReleaseTensorTypeAndShapeInfo = 99,
  kReleaseSessionOptions = 100,
  kGetAvailableProviders = 125,
  kReleaseAvailableProviders = 126,
  kAddSessionConfigEntry = 130,
  kEnableProfiling = 14,
  kAllocatorFree = 76,
  kGetAllocatorWithDefaultOptions = 78,
  kSessionEndProfiling = 110,
  kCreateCustomOpDomain = 26,
  kCustomOpDomainAdd = 27,
  kAddCustomOpDomain = 28,
  kKernelInfoGetAttributeFloat = 85,
  kKernelInfoGetAttributeInt64 = 86,
  kKernelContextGetInputCount = 88,
  kKernelContextGetInput = 90,
  kKernelContextGetOutput = 91,
  kGetBuildInfoString = 254,
  kKernelContextParallelFor = 274,
};
// The API version asked for: one that has every entry above (KernelContext_ParallelFor came last, in 17).
constexpr uint32_t kApiVersion = 17;

void* const* api = nullptr;
OrtEnv* ortEnv = nullptr;
OrtMemoryInfo* cpuInfo = nullptr;
std::string runtimeVersion;

template <typename F>
F fn(ApiIndex i) {
  return reinterpret_cast<F>(api[i]);
}

// The error message of a non-null status (which it frees), or "" for success.
std::string check(OrtStatus* status) {
  if (status == nullptr) return "";
  std::string msg = fn<const char* (*)(const OrtStatus*)>(kGetErrorMessage)(status);
  fn<void (*)(OrtStatus*)>(kReleaseStatus)(status);
  return msg.empty() ? "unknown ONNX Runtime error" : msg;
}

void releaseValue(OrtValue* v) {
  if (v) fn<void (*)(OrtValue*)>(kReleaseValue)(v);
}

// Element sizes by ONNX data type (float 1, uint8 2, int8 3, int32 6, int64 7, bool 9, double 11).
size_t elementSize(int type) {
  switch (type) {
    case 1: case 6: return 4;
    case 2: case 3: case 9: return 1;
    case 7: case 11: return 8;
    default: return 0;
  }
}

napi_value fail(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

#define NAPI_OK(call)                                                  \
  do {                                                                 \
    if ((call) != napi_ok) return fail(env, "ort_run: " #call " failed"); \
  } while (0)

std::string getString(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return "";
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

napi_value property(napi_env env, napi_value obj, const char* key) {
  napi_value v = nullptr;
  napi_get_named_property(env, obj, key, &v);
  return v;
}

int getInt(napi_env env, napi_value obj, const char* key) {
  int32_t v = 0;
  napi_get_value_int32(env, property(env, obj, key), &v);
  return v;
}

bool getBool(napi_env env, napi_value obj, const char* key) {
  bool v = false;
  napi_get_value_bool(env, property(env, obj, key), &v);
  return v;
}

uint32_t arrayLength(napi_env env, napi_value arr) {
  uint32_t n = 0;
  napi_get_array_length(env, arr, &n);
  return n;
}

napi_value element(napi_env env, napi_value arr, uint32_t i) {
  napi_value v = nullptr;
  napi_get_element(env, arr, i, &v);
  return v;
}

bool getDims(napi_env env, napi_value arr, std::vector<int64_t>& dims) {
  uint32_t n = arrayLength(env, arr);
  dims.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    double d = 0;
    if (napi_get_value_double(env, element(env, arr, i), &d) != napi_ok || d < 0) return false;
    dims[i] = static_cast<int64_t>(d);
  }
  return true;
}


// ---- Custom ops (domain "ai.imagen_ts"): fused GroupNorm (forward and backward), SiLU backward, spatial pads and
// row shifts, the optimizer's updates, the Winograd transforms of 3x3 convs (winograd.h); on ORT's intra-op
// threads ----
struct OrtKernelInfo;
struct OrtKernelContext;
struct OrtCustomOpDomain;

// The custom-op table, as ONNX Runtime reads it for version 13 (later versions append fields).
struct CustomOp {
  uint32_t version;
  void* (*CreateKernel)(const CustomOp* op, const OrtApi* api, const OrtKernelInfo* info);
  const char* (*GetName)(const CustomOp* op);
  const char* (*GetExecutionProviderType)(const CustomOp* op);
  int (*GetInputType)(const CustomOp* op, size_t index);
  size_t (*GetInputTypeCount)(const CustomOp* op);
  int (*GetOutputType)(const CustomOp* op, size_t index);
  size_t (*GetOutputTypeCount)(const CustomOp* op);
  void (*KernelCompute)(void* kernel, OrtKernelContext* context);
  void (*KernelDestroy)(void* kernel);
  int (*GetInputCharacteristic)(const CustomOp* op, size_t index);
  int (*GetOutputCharacteristic)(const CustomOp* op, size_t index);
  int (*GetInputMemoryType)(const CustomOp* op, size_t index);
};

OrtCustomOpDomain* opDomain = nullptr;

struct GroupNormKernel {
  int64_t groups = 1;
  float eps = 1e-5f;
};

// A node's integer / float attribute (left as it was where the node has none).
void intAttr(const OrtKernelInfo* info, const char* name, int64_t& value) {
  check(fn<OrtStatus* (*)(const OrtKernelInfo*, const char*, int64_t*)>(kKernelInfoGetAttributeInt64)(info, name, &value));
}

void floatAttr(const OrtKernelInfo* info, const char* name, float& value) {
  check(fn<OrtStatus* (*)(const OrtKernelInfo*, const char*, float*)>(kKernelInfoGetAttributeFloat)(info, name, &value));
}

template <typename K>
void destroyKernel(void* k) {
  delete static_cast<K*>(k);
}

void* createGroupNormKernel(const CustomOp*, const OrtApi*, const OrtKernelInfo* info) {
  auto* k = new GroupNormKernel();
  intAttr(info, "groups", k->groups);
  floatAttr(info, "eps", k->eps);
  return k;
}

struct Tensor {
  float* data = nullptr;
  std::vector<int64_t> dims;
  size_t count() const {
    size_t n = 1;
    for (int64_t d : dims) n *= static_cast<size_t>(d);
    return n;
  }
};

void orThrow(OrtStatus* status) {
  std::string err = check(status);
  if (!err.empty()) throw std::runtime_error(err);
}

Tensor describe(OrtValue* value) {
  Tensor t;
  OrtTensorTypeAndShapeInfo* ti = nullptr;
  orThrow(fn<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(kGetTensorTypeAndShape)(value, &ti));
  size_t rank = 0;
  std::string err = check(fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(kGetDimensionsCount)(ti, &rank));
  t.dims.resize(rank);
  if (err.empty() && rank) err = check(fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>(kGetDimensions)(ti, t.dims.data(), rank));
  fn<void (*)(OrtTensorTypeAndShapeInfo*)>(kReleaseTensorTypeAndShapeInfo)(ti);
  if (!err.empty()) throw std::runtime_error(err);
  void* data = nullptr;
  orThrow(fn<OrtStatus* (*)(OrtValue*, void**)>(kGetTensorMutableData)(value, &data));
  t.data = static_cast<float*>(data);
  return t;
}

Tensor input(OrtKernelContext* ctx, size_t i) {
  const OrtValue* v = nullptr;
  orThrow(fn<OrtStatus* (*)(const OrtKernelContext*, size_t, const OrtValue**)>(kKernelContextGetInput)(ctx, i, &v));
  return describe(const_cast<OrtValue*>(v));
}

Tensor output(OrtKernelContext* ctx, size_t i, const std::vector<int64_t>& dims) {
  OrtValue* v = nullptr;
  orThrow(fn<OrtStatus* (*)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**)>(kKernelContextGetOutput)(ctx, i, dims.data(), dims.size(), &v));
  return describe(v);
}

template <typename F>
void parallelFor(OrtKernelContext* ctx, size_t tasks, F& body) {
  auto trampoline = [](void* data, size_t i) { (*static_cast<F*>(data))(i); };
  orThrow(fn<OrtStatus* (*)(const OrtKernelContext*, void (*)(void*, size_t), size_t, size_t, void*)>(kKernelContextParallelFor)(
      ctx, trampoline, tasks, 0, &body));
}

// Sums over n values of x - shift, (x - shift)^2 and, WithG, g and g * (x - shift): 16 float lanes, folded
// into doubles every 4096 values. A shift near the mean (the group's first value) keeps the variance from
// cancelling.
struct Sums {
  double x = 0, xx = 0, g = 0, gx = 0;
};

typedef float Lanes __attribute__((vector_size(64)));  // 16 floats (GCC/Clang vector extension)

template <bool WithG>
void accumulate(const float* x, const float* g, size_t n, float shift, Sums& out) {
  constexpr size_t L = 16;
  Lanes k = {0};
  k += shift;
  size_t i = 0;
  while (i < n) {
    size_t end = std::min(n, i + 4096);
    Lanes sx = {0}, sxx = {0}, sg = {0}, sgx = {0};
    for (; i + L <= end; i += L) {
      Lanes xv, gv;
      std::memcpy(&xv, x + i, sizeof xv);
      xv -= k;
      sx += xv;
      sxx += xv * xv;
      if constexpr (WithG) {
        std::memcpy(&gv, g + i, sizeof gv);
        sg += gv;
        sgx += gv * xv;
      }
    }
    for (; i < end; i++) {
      float xv = x[i] - shift;
      sx[0] += xv;
      sxx[0] += xv * xv;
      if constexpr (WithG) {
        sg[0] += g[i];
        sgx[0] += g[i] * xv;
      }
    }
    for (size_t l = 0; l < L; l++) {
      out.x += sx[l];
      out.xx += sxx[l];
      out.g += sg[l];
      out.gx += sgx[l];
    }
  }
}

struct GroupShape {
  size_t batch, channels, spatial, groups, per;
};

GroupShape groupShape(const Tensor& x, int64_t groups) {
  if (x.dims.size() < 3 || groups < 1 || x.dims[1] % groups != 0) throw std::runtime_error("GroupNorm kernel: bad input shape");
  GroupShape s;
  s.batch = static_cast<size_t>(x.dims[0]);
  s.channels = static_cast<size_t>(x.dims[1]);
  s.spatial = x.count() / (s.batch * s.channels);
  s.groups = static_cast<size_t>(groups);
  s.per = s.channels / s.groups;
  return s;
}

// GroupNormStats(x, g) -> [B, 4, C]: per sample and channel, p = sum of g * xhat, q = sum of g, and the
// channel's group mean and reciprocal standard deviation (xhat = (x - mean) * rstd, biased variance).
void computeGroupNormStats(void* kernel, OrtKernelContext* ctx) {
  auto* k = static_cast<GroupNormKernel*>(kernel);
  Tensor x = input(ctx, 0), g = input(ctx, 1);
  GroupShape s = groupShape(x, k->groups);
  if (g.count() != x.count()) throw std::runtime_error("GroupNormStats: x and g differ in size");
  Tensor out = output(ctx, 0, {x.dims[0], 4, x.dims[1]});
  auto body = [&](size_t task) {
    size_t b = task / s.groups, grp = task % s.groups;
    size_t c0 = grp * s.per;
    std::vector<Sums> ch(s.per);
    double sx = 0, sxx = 0;
    float shift = x.data[(b * s.channels + c0) * s.spatial];
    for (size_t c = 0; c < s.per; c++) {
      size_t at = (b * s.channels + c0 + c) * s.spatial;
      accumulate<true>(x.data + at, g.data + at, s.spatial, shift, ch[c]);
      sx += ch[c].x;
      sxx += ch[c].xx;
    }
    double n = static_cast<double>(s.per * s.spatial);
    double shifted = sx / n;  // the mean less the shift
    double mean = shift + shifted;
    double var = std::max(0.0, sxx / n - shifted * shifted);
    double rstd = 1.0 / std::sqrt(var + k->eps);
    float* o = out.data + b * 4 * s.channels;
    for (size_t c = 0; c < s.per; c++) {
      o[c0 + c] = static_cast<float>(rstd * (ch[c].gx - shifted * ch[c].g));
      o[s.channels + c0 + c] = static_cast<float>(ch[c].g);
      o[2 * s.channels + c0 + c] = static_cast<float>(mean);
      o[3 * s.channels + c0 + c] = static_cast<float>(rstd);
    }
  };
  parallelFor(ctx, s.batch * s.groups, body);
}

// GroupNormInputGrad(x, g, stats, gamma) -> dx = rstd * (gamma * g - m1 - xhat * m2), where m1 and m2 are the
// group means of gamma * q and gamma * p (from GroupNormStats); gamma is [C] or per sample [B, C].
void computeGroupNormInputGrad(void* kernel, OrtKernelContext* ctx) {
  auto* k = static_cast<GroupNormKernel*>(kernel);
  Tensor x = input(ctx, 0), g = input(ctx, 1), st = input(ctx, 2), gamma = input(ctx, 3);
  GroupShape s = groupShape(x, k->groups);
  bool perSample = gamma.dims.size() == 2;
  if (g.count() != x.count() || st.count() != s.batch * 4 * s.channels || gamma.count() != (perSample ? s.batch : 1) * s.channels) {
    throw std::runtime_error("GroupNormInputGrad: inputs differ in size");
  }
  Tensor dx = output(ctx, 0, x.dims);
  auto body = [&](size_t task) {
    size_t b = task / s.groups, grp = task % s.groups;
    size_t c0 = grp * s.per;
    const float* p = st.data + b * 4 * s.channels;
    const float* q = p + s.channels;
    const float* gm = gamma.data + (perSample ? b * s.channels : 0);
    double m1 = 0, m2 = 0;
    for (size_t c = c0; c < c0 + s.per; c++) {
      m1 += static_cast<double>(gm[c]) * q[c];
      m2 += static_cast<double>(gm[c]) * p[c];
    }
    double n = static_cast<double>(s.per * s.spatial);
    m1 /= n;
    m2 /= n;
    double mean = p[2 * s.channels + c0], rstd = p[3 * s.channels + c0];
    // dx = a_c * g + kx * x + k0
    float kx = static_cast<float>(-rstd * rstd * m2);
    float k0 = static_cast<float>(-rstd * m1 + rstd * rstd * m2 * mean);
    for (size_t c = c0; c < c0 + s.per; c++) {
      size_t at = (b * s.channels + c) * s.spatial;
      float a = static_cast<float>(rstd * gm[c]);
      const float* gx = g.data + at;
      const float* xx = x.data + at;
      float* d = dx.data + at;
      for (size_t i = 0; i < s.spatial; i++) d[i] = a * gx[i] + kx * xx[i] + k0;
    }
  };
  parallelFor(ctx, s.batch * s.groups, body);
}

// Elementwise kernels over n values in blocks of 16384 on ORT's threads: f(i) for each index.
template <typename F>
void elementwise(OrtKernelContext* ctx, size_t n, F f) {
  constexpr size_t block = 16384;
  auto body = [&](size_t task) {
    size_t end = std::min(n, (task + 1) * block);
    for (size_t i = task * block; i < end; i++) f(i);
  };
  parallelFor(ctx, (n + block - 1) / block, body);
}

// SiluGrad(s, y, g) -> g * (s + y * (1 - s)): SiLU's backward from its sigmoid s and output y, all one shape.
void computeSiluGrad(void*, OrtKernelContext* ctx) {
  Tensor s = input(ctx, 0), y = input(ctx, 1), g = input(ctx, 2);
  size_t n = s.count();
  if (y.count() != n || g.count() != n) throw std::runtime_error("SiluGrad: inputs differ in size");
  Tensor dx = output(ctx, 0, s.dims);
  const float* sp = s.data;
  const float* yp = y.data;
  const float* gp = g.data;
  float* d = dx.data;
  elementwise(ctx, n, [=](size_t i) { d[i] = gp[i] * (sp[i] + yp[i] * (1.0f - sp[i])); });
}

// Axpby(a, b, alpha, beta) -> alpha * a + beta * b (alpha, beta 0-D): the optimizer's moment and EMA updates.
void computeAxpby(void*, OrtKernelContext* ctx) {
  Tensor a = input(ctx, 0), b = input(ctx, 1), alpha = input(ctx, 2), beta = input(ctx, 3);
  size_t n = a.count();
  if (b.count() != n || alpha.count() != 1 || beta.count() != 1) throw std::runtime_error("Axpby: a and b differ in size or alpha, beta are not scalars");
  Tensor out = output(ctx, 0, a.dims);
  const float al = alpha.data[0], be = beta.data[0];
  const float* ap = a.data;
  const float* bp = b.data;
  float* op = out.data;
  elementwise(ctx, n, [=](size_t i) { op[i] = al * ap[i] + be * bp[i]; });
}

// AdamwParam(p, m, v, step, eps, decay) -> p * decay - step * m / (sqrt(v) + eps) (the last three 0-D).
void computeAdamwParam(void*, OrtKernelContext* ctx) {
  Tensor p = input(ctx, 0), m = input(ctx, 1), v = input(ctx, 2), step = input(ctx, 3), eps = input(ctx, 4), decay = input(ctx, 5);
  size_t n = p.count();
  if (m.count() != n || v.count() != n || step.count() != 1 || eps.count() != 1 || decay.count() != 1) {
    throw std::runtime_error("AdamwParam: p, m, v differ in size or step, eps, decay are not scalars");
  }
  Tensor out = output(ctx, 0, p.dims);
  const float st = step.data[0], ep = eps.data[0], de = decay.data[0];
  const float* pp = p.data;
  const float* mp = m.data;
  const float* vp = v.data;
  float* op = out.data;
  elementwise(ctx, n, [=](size_t i) { op[i] = pp[i] * de - (mp[i] * st) / (std::sqrt(vp[i]) + ep); });
}

void* createPlainKernel(const CustomOp*, const OrtApi*, const OrtKernelInfo*) {
  return new GroupNormKernel();
}

// PadHW(x [N, C, H, W]) -> x with `top`, `left`, `bottom`, `right` zero rows/columns added on those sides (a
// negative amount crops): ORT's Pad on one thread, this on all of them, a plane per task.
struct PadKernel {
  int64_t top = 0, left = 0, bottom = 0, right = 0;
};

void* createPadKernel(const CustomOp*, const OrtApi*, const OrtKernelInfo* info) {
  auto* k = new PadKernel();
  intAttr(info, "top", k->top);
  intAttr(info, "left", k->left);
  intAttr(info, "bottom", k->bottom);
  intAttr(info, "right", k->right);
  return k;
}

// Writes the plane src [h, w] into dst [ho, wo] moved down by `top` rows and right by `left` columns (either
// negative to move up or left), zeros where nothing lands.
void shiftPlane(const float* src, int64_t h, int64_t w, float* dst, int64_t ho, int64_t wo, int64_t top, int64_t left) {
  // Output columns [c0, c1) come from input columns [c0 - left, c1 - left).
  int64_t c0 = std::max<int64_t>(0, left), c1 = std::min<int64_t>(wo, w + left);
  for (int64_t y = 0; y < ho; y++) {
    int64_t sy = y - top;
    float* row = dst + y * wo;
    if (sy < 0 || sy >= h || c1 <= c0) {
      std::memset(row, 0, sizeof(float) * wo);
      continue;
    }
    if (c0 > 0) std::memset(row, 0, sizeof(float) * c0);
    std::memcpy(row + c0, src + sy * w + (c0 - left), sizeof(float) * (c1 - c0));
    if (c1 < wo) std::memset(row + c1, 0, sizeof(float) * (wo - c1));
  }
}

void computePadHW(void* kernel, OrtKernelContext* ctx) {
  auto* k = static_cast<PadKernel*>(kernel);
  Tensor x = input(ctx, 0);
  if (x.dims.size() != 4) throw std::runtime_error("PadHW: expected [N, C, H, W]");
  int64_t h = x.dims[2], w = x.dims[3];
  int64_t ho = h + k->top + k->bottom, wo = w + k->left + k->right;
  if (ho < 0 || wo < 0) throw std::runtime_error("PadHW: crops more than the input has");
  Tensor out = output(ctx, 0, {x.dims[0], x.dims[1], ho, wo});
  auto body = [&](size_t plane) { shiftPlane(x.data + plane * h * w, h, w, out.data + plane * ho * wo, ho, wo, k->top, k->left); };
  parallelFor(ctx, static_cast<size_t>(x.dims[0] * x.dims[1]), body);
}

// GroupNorm(x, gamma, beta) -> (x - mean) * rstd * gamma + beta per group (biased variance); gamma and beta are
// [C] or per sample [B, C]. Two passes over x: the group's moments, then y = x * a_c + b_c.
void computeGroupNorm(void* kernel, OrtKernelContext* ctx) {
  auto* k = static_cast<GroupNormKernel*>(kernel);
  Tensor x = input(ctx, 0), gamma = input(ctx, 1), beta = input(ctx, 2);
  GroupShape s = groupShape(x, k->groups);
  bool gammaPerSample = gamma.dims.size() == 2, betaPerSample = beta.dims.size() == 2;
  if (gamma.count() != (gammaPerSample ? s.batch : 1) * s.channels || beta.count() != (betaPerSample ? s.batch : 1) * s.channels) {
    throw std::runtime_error("GroupNorm: gamma or beta does not match the channels");
  }
  Tensor y = output(ctx, 0, x.dims);
  auto body = [&](size_t task) {
    size_t b = task / s.groups, grp = task % s.groups;
    size_t c0 = grp * s.per;
    const float* xg = x.data + (b * s.channels + c0) * s.spatial;
    size_t n = s.per * s.spatial;
    Sums m;
    accumulate<false>(xg, nullptr, n, xg[0], m);
    double shifted = m.x / static_cast<double>(n);
    double mean = xg[0] + shifted;
    double rstd = 1.0 / std::sqrt(std::max(0.0, m.xx / static_cast<double>(n) - shifted * shifted) + k->eps);
    const float* gm = gamma.data + (gammaPerSample ? b * s.channels : 0);
    const float* bt = beta.data + (betaPerSample ? b * s.channels : 0);
    for (size_t c = c0; c < c0 + s.per; c++) {
      float a = static_cast<float>(rstd * gm[c]);
      float off = static_cast<float>(bt[c] - mean * rstd * gm[c]);
      const float* xc = x.data + (b * s.channels + c) * s.spatial;
      float* yc = y.data + (b * s.channels + c) * s.spatial;
      for (size_t i = 0; i < s.spatial; i++) yc[i] = xc[i] * a + off;
    }
  };
  parallelFor(ctx, s.batch * s.groups, body);
}

// RowShifts(dy [N, O, H, W]) -> [N, O, kh, H, W], entry (n, o, i, y) = row y - i + top of dy (zeros outside):
// the kh row shifts a "same" conv's weight gradient multiplies by (a Pad and a Gather, fused).
struct ShiftKernel {
  int64_t kh = 1, top = 0;
};

void* createShiftKernel(const CustomOp*, const OrtApi*, const OrtKernelInfo* info) {
  auto* k = new ShiftKernel();
  intAttr(info, "kh", k->kh);
  intAttr(info, "top", k->top);
  return k;
}

void computeRowShifts(void* kernel, OrtKernelContext* ctx) {
  auto* k = static_cast<ShiftKernel*>(kernel);
  Tensor dy = input(ctx, 0);
  if (dy.dims.size() != 4 || k->kh < 1) throw std::runtime_error("RowShifts: expected [N, O, H, W] and kh >= 1");
  int64_t h = dy.dims[2], w = dy.dims[3];
  Tensor out = output(ctx, 0, {dy.dims[0], dy.dims[1], k->kh, h, w});
  auto body = [&](size_t plane) {
    for (int64_t i = 0; i < k->kh; i++) shiftPlane(dy.data + plane * h * w, h, w, out.data + (plane * k->kh + i) * h * w, h, w, i - k->top, 0);
  };
  parallelFor(ctx, static_cast<size_t>(dy.dims[0] * dy.dims[1]), body);
}

#include "winograd.h"

int floatType(const CustomOp*, size_t) { return 1; }
size_t oneInput(const CustomOp*) { return 1; }
size_t twoInputs(const CustomOp*) { return 2; }
size_t threeInputs(const CustomOp*) { return 3; }
size_t fourInputs(const CustomOp*) { return 4; }
size_t sixInputs(const CustomOp*) { return 6; }
size_t oneOutput(const CustomOp*) { return 1; }
const char* cpuProvider(const CustomOp*) { return "CPUExecutionProvider"; }
int required(const CustomOp*, size_t) { return 0; }
int defaultMemory(const CustomOp*, size_t) { return 0; }

CustomOp makeOp(const char* (*name)(const CustomOp*), size_t (*inputs)(const CustomOp*), void (*compute)(void*, OrtKernelContext*),
               void* (*create)(const CustomOp*, const OrtApi*, const OrtKernelInfo*) = createGroupNormKernel,
               void (*destroy)(void*) = destroyKernel<GroupNormKernel>) {
  return CustomOp{13, create, name, cpuProvider, floatType, inputs, floatType, oneOutput,
                  compute, destroy, required, required, defaultMemory};
}

CustomOp normOp = makeOp([](const CustomOp*) { return "GroupNorm"; }, threeInputs, computeGroupNorm);
CustomOp statsOp = makeOp([](const CustomOp*) { return "GroupNormStats"; }, twoInputs, computeGroupNormStats);
CustomOp inputGradOp = makeOp([](const CustomOp*) { return "GroupNormInputGrad"; }, fourInputs, computeGroupNormInputGrad);
CustomOp siluGradOp = makeOp([](const CustomOp*) { return "SiluGrad"; }, threeInputs, computeSiluGrad, createPlainKernel);
CustomOp shiftOp = makeOp([](const CustomOp*) { return "RowShifts"; }, oneInput, computeRowShifts, createShiftKernel, destroyKernel<ShiftKernel>);
CustomOp axpbyOp = makeOp([](const CustomOp*) { return "Axpby"; }, fourInputs, computeAxpby, createPlainKernel);
CustomOp adamwOp = makeOp([](const CustomOp*) { return "AdamwParam"; }, sixInputs, computeAdamwParam, createPlainKernel);
CustomOp padOp = makeOp([](const CustomOp*) { return "PadHW"; }, oneInput, computePadHW, createPadKernel, destroyKernel<PadKernel>);
CustomOp winoInOp = makeOp([](const CustomOp*) { return "WinogradInput"; }, oneInput, computeWinogradInput, createWinoKernel, destroyKernel<WinoKernel>);
CustomOp winoOutOp = [] {
  CustomOp op = makeOp([](const CustomOp*) { return "WinogradOutput"; }, twoInputs, computeWinogradOutput, createWinoKernel, destroyKernel<WinoKernel>);
  op.GetInputCharacteristic = [](const CustomOp*, size_t i) { return i == 1 ? 1 : 0; };  // the bias is optional
  return op;
}();
CustomOp winoGradOp = makeOp([](const CustomOp*) { return "WinogradOutputGrad"; }, oneInput, computeWinogradOutputGrad, createWinoKernel, destroyKernel<WinoKernel>);

std::string registerOps() {
  std::string err = check(fn<OrtStatus* (*)(const char*, OrtCustomOpDomain**)>(kCreateCustomOpDomain)("ai.imagen_ts", &opDomain));
  for (CustomOp* op : {&normOp, &statsOp, &inputGradOp, &siluGradOp, &padOp, &shiftOp, &axpbyOp, &adamwOp, &winoInOp, &winoOutOp, &winoGradOp}) {
    if (err.empty()) err = check(fn<OrtStatus* (*)(OrtCustomOpDomain*, const CustomOp*)>(kCustomOpDomainAdd)(opDomain, op));
  }
  return err;
}

// init(libraryPath): loads libonnxruntime, checks the API table's layout, creates the environment; returns
// the library's version.
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (api == nullptr) {
    std::string path = getString(env, argv[0]);
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (lib == nullptr) return fail(env, "cannot load ONNX Runtime from " + path + ": " + dlerror());
    auto getBase = reinterpret_cast<const OrtApiBase* (*)()>(dlsym(lib, "OrtGetApiBase"));
    if (getBase == nullptr) return fail(env, path + " has no OrtGetApiBase");
    const OrtApiBase* base = getBase();
    const OrtApi* table = base->GetApi(kApiVersion);
    if (table == nullptr) return fail(env, "this ONNX Runtime does not offer C API version 17 (ONNX Runtime 1.17)");
    api = reinterpret_cast<void* const*>(table);
    // A status made by entry 0 must read back through entries 1 and 2; entry 125 must list the CPU provider.
    OrtStatus* probe = fn<OrtStatus* (*)(int, const char*)>(kCreateStatus)(6, "imagen-probe");
    bool ok = fn<int (*)(const OrtStatus*)>(kGetErrorCode)(probe) == 6 &&
              std::strcmp(fn<const char* (*)(const OrtStatus*)>(kGetErrorMessage)(probe), "imagen-probe") == 0;
    fn<void (*)(OrtStatus*)>(kReleaseStatus)(probe);
    char** providers = nullptr;
    int count = 0;
    ok = ok && check(fn<OrtStatus* (*)(char***, int*)>(kGetAvailableProviders)(&providers, &count)).empty();
    bool cpu = false;
    for (int i = 0; ok && i < count; i++) cpu = cpu || std::strcmp(providers[i], "CPUExecutionProvider") == 0;
    if (providers) check(fn<OrtStatus* (*)(char**, int)>(kReleaseAvailableProviders)(providers, count));
    // Entry 254 must return the build-info string (which checks the count of the entries in between).
    ok = ok && std::strncmp(fn<const char* (*)()>(kGetBuildInfoString)(), "ORT Build Info", 14) == 0;
    std::string err = ok && cpu ? "" : "ONNX Runtime's C API table does not have the expected layout";
    if (err.empty()) err = registerOps();
    // Logging at ERROR (3); CPU memory info: arena allocator (1), default memory type (0).
    if (err.empty()) err = check(fn<OrtStatus* (*)(int, const char*, OrtEnv**)>(kCreateEnv)(3, "imagen-ts", &ortEnv));
    if (err.empty()) err = check(fn<OrtStatus* (*)(int, int, OrtMemoryInfo**)>(kCreateCpuMemoryInfo)(1, 0, &cpuInfo));
    if (!err.empty()) {
      api = nullptr;
      return fail(env, err);
    }
    runtimeVersion = base->GetVersionString();
  }
  napi_value version;
  NAPI_OK(napi_create_string_utf8(env, runtimeVersion.c_str(), NAPI_AUTO_LENGTH, &version));
  return version;
}

// A session handle: a JS external that frees the session when collected (or at release()).
struct SessionBox {
  OrtSession* session = nullptr;
  int running = 0;
  bool releaseWhenIdle = false;
};

void releaseSession(SessionBox* box) {
  if (box->session) fn<void (*)(OrtSession*)>(kReleaseSession)(box->session);
  box->session = nullptr;
}

void finalizeBox(napi_env, void* data, void*) {
  auto* box = static_cast<SessionBox*>(data);
  releaseSession(box);
  delete box;
}

// Work done off the JS thread, settling a promise.
struct Task {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> keep;  // typed arrays whose memory the task reads or writes
  std::string error;
  virtual ~Task() = default;
  virtual void execute() = 0;
  virtual napi_value result(napi_env env) = 0;
};

void executeTask(napi_env, void* data) {
  static_cast<Task*>(data)->execute();
}

void completeTask(napi_env env, napi_status, void* data) {
  auto* task = static_cast<Task*>(data);
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value value = task->error.empty() ? task->result(env) : nullptr;
  if (task->error.empty() && value == nullptr) {
    napi_value exc;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_get_and_clear_last_exception(env, &exc);
      napi_reject_deferred(env, task->deferred, exc);
    } else {
      task->error = "ort_run: could not build the result";
    }
  } else if (value != nullptr) {
    napi_resolve_deferred(env, task->deferred, value);
  }
  if (!task->error.empty()) {
    napi_value msg, err;
    napi_create_string_utf8(env, task->error.c_str(), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, task->deferred, err);
  }
  for (napi_ref r : task->keep) napi_delete_reference(env, r);
  napi_delete_async_work(env, task->work);
  napi_close_handle_scope(env, scope);
  delete task;
}

napi_value queue(napi_env env, Task* task, const char* name) {
  napi_value promise, resource;
  NAPI_OK(napi_create_promise(env, &task->deferred, &promise));
  NAPI_OK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource));
  NAPI_OK(napi_create_async_work(env, nullptr, resource, executeTask, completeTask, task, &task->work));
  NAPI_OK(napi_queue_async_work(env, task->work));
  return promise;
}

struct CreateTask : Task {
  std::vector<uint8_t> model;
  int threads = 1, optimization = 99;
  bool memPattern = true;
  std::vector<std::pair<std::string, std::string>> config;  // session config entries
  std::string optimizedPath, profilePrefix;
  OrtSession* session = nullptr;

  void execute() override {
    OrtSessionOptions* so = nullptr;
    error = check(fn<OrtStatus* (*)(OrtSessionOptions**)>(kCreateSessionOptions)(&so));
    if (!error.empty()) return;
    auto step = [&](OrtStatus* s) {
      if (error.empty()) error = check(s);
    };
    step(fn<OrtStatus* (*)(OrtSessionOptions*, int)>(kSetIntraOpNumThreads)(so, threads));
    step(fn<OrtStatus* (*)(OrtSessionOptions*, int)>(kSetInterOpNumThreads)(so, 1));
    step(fn<OrtStatus* (*)(OrtSessionOptions*, int)>(kSetSessionExecutionMode)(so, 0));  // sequential
    step(fn<OrtStatus* (*)(OrtSessionOptions*, int)>(kSetSessionGraphOptimizationLevel)(so, optimization));
    step(fn<OrtStatus* (*)(OrtSessionOptions*)>(memPattern ? kEnableMemPattern : kDisableMemPattern)(so));
    step(fn<OrtStatus* (*)(OrtSessionOptions*, OrtCustomOpDomain*)>(kAddCustomOpDomain)(so, opDomain));
    for (auto& [key, value] : config) {
      step(fn<OrtStatus* (*)(OrtSessionOptions*, const char*, const char*)>(kAddSessionConfigEntry)(
          so, key.c_str(), value.c_str()));
    }
    if (!profilePrefix.empty()) {
      step(fn<OrtStatus* (*)(OrtSessionOptions*, const char*)>(kEnableProfiling)(so, profilePrefix.c_str()));
    }
    if (!optimizedPath.empty()) {
      step(fn<OrtStatus* (*)(OrtSessionOptions*, const char*)>(kSetOptimizedModelFilePath)(so, optimizedPath.c_str()));
    }
    if (error.empty()) {
      step(fn<OrtStatus* (*)(const OrtEnv*, const void*, size_t, const OrtSessionOptions*, OrtSession**)>(
          kCreateSessionFromArray)(ortEnv, model.data(), model.size(), so, &session));
    }
    fn<void (*)(OrtSessionOptions*)>(kReleaseSessionOptions)(so);
    std::vector<uint8_t>().swap(model);
  }

  napi_value result(napi_env env) override {
    auto* box = new SessionBox{session};
    napi_value external;
    if (napi_create_external(env, box, finalizeBox, nullptr, &external) != napi_ok) {
      finalizeBox(env, box, nullptr);
      return nullptr;
    }
    return external;
  }
};

// createSession(modelBytes, { threads, optimization, memPattern, config: [key, value][], optimizedPath })
//   -> Promise<handle>
napi_value CreateSession(napi_env env, napi_callback_info info) {
  if (api == nullptr) return fail(env, "ort_run: init() first");
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  NAPI_OK(napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr));
  auto* task = new CreateTask();
  task->model.assign(static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + length);
  task->threads = getInt(env, argv[1], "threads");
  task->optimization = getInt(env, argv[1], "optimization");
  task->memPattern = getBool(env, argv[1], "memPattern");
  napi_value config = property(env, argv[1], "config");
  for (uint32_t i = 0, n = arrayLength(env, config); i < n; i++) {
    napi_value entry = element(env, config, i);
    task->config.emplace_back(getString(env, element(env, entry, 0)), getString(env, element(env, entry, 1)));
  }
  napi_value path = property(env, argv[1], "optimizedPath");
  napi_valuetype pathType;
  napi_typeof(env, path, &pathType);
  if (pathType == napi_string) task->optimizedPath = getString(env, path);
  napi_value prefix = property(env, argv[1], "profilePrefix");
  napi_typeof(env, prefix, &pathType);
  if (pathType == napi_string) task->profilePrefix = getString(env, prefix);
  return queue(env, task, "imagen.createSession");
}

SessionBox* getBox(napi_env env, napi_value v) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok) return nullptr;
  return static_cast<SessionBox*>(data);
}

// The call's arguments into argv (n of them); the first must be a session handle still open for work, else
// a JS error is thrown and null returned.
SessionBox* liveSession(napi_env env, napi_callback_info info, napi_value* argv, size_t n) {
  size_t argc = n;
  SessionBox* box = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc >= 1) box = getBox(env, argv[0]);
  if (box == nullptr || box->session == nullptr || box->releaseWhenIdle) {
    fail(env, "ort_run: the session was released");
    return nullptr;
  }
  return box;
}

struct RunTask : Task {
  SessionBox* box = nullptr;
  std::vector<std::string> inputNames, outputNames;
  std::vector<OrtValue*> inputs, outputs;
  std::vector<bool> given;  // output i was handed in (written in place)

  ~RunTask() override {
    for (OrtValue* v : inputs) releaseValue(v);
    for (OrtValue* v : outputs) releaseValue(v);
    if (--box->running == 0 && box->releaseWhenIdle) releaseSession(box);
  }

  void execute() override {
    std::vector<const char*> in, out;
    for (auto& s : inputNames) in.push_back(s.c_str());
    for (auto& s : outputNames) out.push_back(s.c_str());
    error = check(fn<OrtStatus* (*)(OrtSession*, const void*, const char* const*, const OrtValue* const*, size_t,
                                    const char* const*, size_t, OrtValue**)>(kRun)(
        box->session, nullptr, in.data(), inputs.data(), inputs.size(), out.data(), out.size(), outputs.data()));
  }

  // [{ type, dims, data }] where data is a new ArrayBuffer, or null for an output written in place.
  napi_value result(napi_env env) override {
    napi_value list;
    NAPI_OK(napi_create_array_with_length(env, outputs.size(), &list));
    for (size_t i = 0; i < outputs.size(); i++) {
      OrtTensorTypeAndShapeInfo* ti = nullptr;
      std::string err = check(fn<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(kGetTensorTypeAndShape)(outputs[i], &ti));
      int type = 0;
      size_t rank = 0, count = 0;
      std::vector<int64_t> dims;
      if (err.empty()) err = check(fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int*)>(kGetTensorElementType)(ti, &type));
      if (err.empty()) err = check(fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(kGetDimensionsCount)(ti, &rank));
      dims.resize(rank);
      if (err.empty() && rank) err = check(fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>(kGetDimensions)(ti, dims.data(), rank));
      if (err.empty()) err = check(fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(kGetTensorShapeElementCount)(ti, &count));
      if (ti) fn<void (*)(OrtTensorTypeAndShapeInfo*)>(kReleaseTensorTypeAndShapeInfo)(ti);
      if (err.empty() && elementSize(type) == 0) err = "output " + outputNames[i] + " has ONNX type " + std::to_string(type) + ", which imagen-ts does not read";
      if (!err.empty()) return fail(env, err);
      napi_value entry, typeJs, dimsJs, dataJs;
      NAPI_OK(napi_create_object(env, &entry));
      NAPI_OK(napi_create_int32(env, type, &typeJs));
      NAPI_OK(napi_create_array_with_length(env, rank, &dimsJs));
      for (size_t d = 0; d < rank; d++) {
        napi_value dv;
        NAPI_OK(napi_create_double(env, static_cast<double>(dims[d]), &dv));
        NAPI_OK(napi_set_element(env, dimsJs, d, dv));
      }
      if (given[i]) {
        NAPI_OK(napi_get_null(env, &dataJs));
      } else {
        size_t bytes = count * elementSize(type);
        void* src = nullptr;
        void* dst = nullptr;
        if (bytes) {
          err = check(fn<OrtStatus* (*)(OrtValue*, void**)>(kGetTensorMutableData)(outputs[i], &src));
          if (!err.empty()) return fail(env, err);
        }
        NAPI_OK(napi_create_arraybuffer(env, bytes, &dst, &dataJs));
        if (bytes) std::memcpy(dst, src, bytes);
      }
      NAPI_OK(napi_set_named_property(env, entry, "type", typeJs));
      NAPI_OK(napi_set_named_property(env, entry, "dims", dimsJs));
      NAPI_OK(napi_set_named_property(env, entry, "data", dataJs));
      NAPI_OK(napi_set_element(env, list, i, entry));
    }
    return list;
  }
};

// Wraps a typed array's memory as an ORT tensor of ONNX type `type` and shape `dimsJs` (no copy).
std::string wrap(napi_env env, Task* task, napi_value array, int type, napi_value dimsJs, const std::string& name, OrtValue** out) {
  static uint8_t empty[8];
  napi_typedarray_type ta;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, array, &ta, &length, &data, nullptr, nullptr) != napi_ok) return name + ": not a typed array";
  std::vector<int64_t> dims;
  if (!getDims(env, dimsJs, dims)) return name + ": bad dims";
  size_t count = 1;
  for (int64_t d : dims) count *= static_cast<size_t>(d);
  size_t size = elementSize(type);
  bool match = (type == 1 && ta == napi_float32_array) || (type == 7 && ta == napi_bigint64_array) ||
               ((type == 9 || type == 2) && ta == napi_uint8_array) || (type == 6 && ta == napi_int32_array) ||
               (type == 11 && ta == napi_float64_array);
  if (!match) return name + ": the typed array does not hold ONNX type " + std::to_string(type);
  if (count != length) return name + ": " + std::to_string(length) + " values for a shape of " + std::to_string(count);
  napi_ref ref;
  if (napi_create_reference(env, array, 1, &ref) != napi_ok) return name + ": cannot keep a reference";
  task->keep.push_back(ref);
  return check(fn<OrtStatus* (*)(const OrtMemoryInfo*, void*, size_t, const int64_t*, size_t, int, OrtValue**)>(
      kCreateTensorWithDataAsOrtValue)(cpuInfo, count ? data : empty, count * size, dims.data(), dims.size(), type, out));
}

// run(handle, inputs: [name, typedArray, type, dims][], outputs: [name, typedArray | null, type, dims][])
//   -> Promise<[{ type, dims, data: ArrayBuffer | null }]>
napi_value Run(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  SessionBox* box = liveSession(env, info, argv, 3);
  if (box == nullptr) return nullptr;
  auto* task = new RunTask();
  task->box = box;
  box->running++;
  auto abort = [&](const std::string& msg) {
    for (napi_ref r : task->keep) napi_delete_reference(env, r);
    delete task;
    return fail(env, "ort_run: " + msg);
  };
  napi_ref handleRef;  // the handle stays alive (and its session with it) until the run settles
  if (napi_create_reference(env, argv[0], 1, &handleRef) != napi_ok) return abort("cannot keep the session");
  task->keep.push_back(handleRef);
  // Each spec is [name, typedArray | null, type, dims]; a null output lets ORT allocate it.
  auto parse = [&](napi_value spec, const char* role, std::string& name, OrtValue*& v) {
    name = getString(env, element(env, spec, 0));
    napi_value array = element(env, spec, 1);
    napi_valuetype t;
    napi_typeof(env, array, &t);
    if (t == napi_null || t == napi_undefined) return std::string();
    int32_t type = 0;
    napi_get_value_int32(env, element(env, spec, 2), &type);
    return wrap(env, task, array, type, element(env, spec, 3), std::string(role) + " " + name, &v);
  };
  for (uint32_t i = 0, n = arrayLength(env, argv[1]); i < n; i++) {
    std::string name;
    OrtValue* v = nullptr;
    std::string err = parse(element(env, argv[1], i), "input", name, v);
    if (err.empty() && v == nullptr) err = "input " + name + ": no data";
    if (!err.empty()) return abort(err);
    task->inputNames.push_back(name);
    task->inputs.push_back(v);
  }
  for (uint32_t i = 0, n = arrayLength(env, argv[2]); i < n; i++) {
    std::string name;
    OrtValue* v = nullptr;
    std::string err = parse(element(env, argv[2], i), "output", name, v);
    if (!err.empty()) return abort(err);
    task->outputNames.push_back(name);
    task->outputs.push_back(v);
    task->given.push_back(v != nullptr);
  }
  return queue(env, task, "imagen.run");
}

// endProfiling(handle) -> the path of the profile ORT wrote (sessions created with profilePrefix).
napi_value EndProfiling(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  SessionBox* box = liveSession(env, info, argv, 1);
  if (box == nullptr) return nullptr;
  struct OrtAllocator;
  OrtAllocator* alloc = nullptr;
  std::string err = check(fn<OrtStatus* (*)(OrtAllocator**)>(kGetAllocatorWithDefaultOptions)(&alloc));
  char* path = nullptr;
  if (err.empty()) err = check(fn<OrtStatus* (*)(OrtSession*, OrtAllocator*, char**)>(kSessionEndProfiling)(box->session, alloc, &path));
  if (!err.empty()) return fail(env, err);
  napi_value result;
  napi_create_string_utf8(env, path ? path : "", NAPI_AUTO_LENGTH, &result);
  if (path) check(fn<OrtStatus* (*)(OrtAllocator*, void*)>(kAllocatorFree)(alloc, path));
  return result;
}

// release(handle): frees the session now (later runs reject).
napi_value Release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  SessionBox* box = getBox(env, argv[0]);
  if (box && box->running > 0) box->releaseWhenIdle = true;
  else if (box) releaseSession(box);
  return nullptr;
}

napi_value Register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"createSession", nullptr, CreateSession, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"endProfiling", nullptr, EndProfiling, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"release", nullptr, Release, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Register)
