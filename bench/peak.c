/*
 * fp32 peak of this machine: every thread runs 12 independent chains of vector fused multiply-adds (enough to
 * cover the FMA latency of two pipes), at the widest vector width the compiler targets with -march=native.
 * Prints GFLOP/s over all threads, the vector width in floats, and a checksum that keeps the work alive.
 * Usage: peak THREADS [ITERATIONS]   (built and run by bench/peak.ts)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define WIDTH 16
#elif defined(__AVX__)
#define WIDTH 8
#else
#define WIDTH 4
#endif
#define CHAINS 12

typedef float vec __attribute__((vector_size(WIDTH * 4)));
static long iterations = 20000000;
static double checksums[256];

static void *spin(void *arg) {
  long id = (long)arg;
  vec m, c, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
  for (int k = 0; k < WIDTH; k++) {
    m[k] = 0.9999999f;
    c[k] = 1e-7f;
    a0[k] = (float)(k + id);
    a1[k] = a0[k] + 1; a2[k] = a0[k] + 2; a3[k] = a0[k] + 3; a4[k] = a0[k] + 4; a5[k] = a0[k] + 5;
    a6[k] = a0[k] + 6; a7[k] = a0[k] + 7; a8[k] = a0[k] + 8; a9[k] = a0[k] + 9; a10[k] = a0[k] + 10; a11[k] = a0[k] + 11;
  }
  for (long n = 0; n < iterations; n++) {
    a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c; a4 = a4 * m + c; a5 = a5 * m + c;
    a6 = a6 * m + c; a7 = a7 * m + c; a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;
  }
  vec t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  double s = 0;
  for (int k = 0; k < WIDTH; k++) s += t[k];
  checksums[id] = s;
  return 0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (argc > 2) iterations = atol(argv[2]);
  if (threads < 1 || threads > 256 || iterations < 1) {
    fprintf(stderr, "usage: peak THREADS(1-256) [ITERATIONS]\n");
    return 2;
  }
  pthread_t pool[256];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < threads; i++) pthread_create(&pool[i], 0, spin, (void *)i);
  for (int i = 0; i < threads; i++) pthread_join(pool[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  double sum = 0;
  for (int i = 0; i < threads; i++) sum += checksums[i];
  printf("%.3f %d %g\n", 2.0 * WIDTH * CHAINS * (double)iterations * threads / seconds / 1e9, WIDTH, sum);
  return 0;
}
