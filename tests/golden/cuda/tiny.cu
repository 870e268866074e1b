/* relorac: generated CUDA C. C that is also CUDA C++: NVRTC compiles it for the GPU,
 * tests/unit/cuda_emu.h for the host. */
#ifdef __CUDACC__
#pragma nv_diag_suppress 177 /* helpers of this prelude a program does not use */
#define RELORAC_KERNEL extern "C" __global__
#define RELORAC_DYN_SMEM(name) extern __shared__ float name[]
#endif
#define K_FULL 0xffffffffu

static __device__ __forceinline__ float k_bf16(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
static __device__ __forceinline__ unsigned short k_f2bf(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
static __device__ __forceinline__ unsigned long long k_splitmix64(unsigned long long x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
/* key = splitmix64(seed ^ splitmix64(stream)); uniform = (splitmix64(key + c) >> 40) 2^-24 */
static __device__ __forceinline__ float k_uniform(unsigned long long key, unsigned long long c)
{
    return (float)(k_splitmix64(key + c) >> 40) * 5.9604644775390625e-08f;
}
static __device__ __forceinline__ float k_normal(unsigned long long key, unsigned long long c)
{
    double u1 = (double)k_uniform(key, c * 2), u2 = (double)k_uniform(key, c * 2 + 1);
    if (u1 < 1e-12)
        u1 = 1e-12;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
static __device__ __forceinline__ float k_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(K_FULL, v, o);
    return v;
}
static __device__ __forceinline__ float k_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(K_FULL, v, o));
    return v;
}
/* sh: 32 floats of shared memory, free on entry and on return */
static __device__ __forceinline__ float k_block_sum(float v, float *sh)
{
    v = k_warp_sum(v);
    if ((threadIdx.x & 31) == 0)
        sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++)
        t += sh[w];
    __syncthreads();
    return t;
}
static __device__ __forceinline__ float k_block_max(float v, float *sh)
{
    v = k_warp_max(v);
    if ((threadIdx.x & 31) == 0)
        sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = sh[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
        t = fmaxf(t, sh[w]);
    __syncthreads();
    return t;
}

/* init_k0_fill: flat rows 1 x cols 1, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k0_fill(int *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = 0;
        const int v0 = 0;
        const int v1 = j;
        p0[v1] = (int)(v0);
    }
}

/* init_k1_init_normal: flat rows 256 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k1_init_normal(float *__restrict__ p0, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 32768LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 32768;
        const int v7 = (v5) * (v6);
        const int v8 = (v7) + (v4);
        const float v9 = k_normal(key0, (unsigned long long)(long long)v8);
        const float v10 = 0.0199999996f;
        const float v11 = (v10) * (v9);
        p0[v4] = v11;
    }
}

/* init_k2_fill: flat rows 1 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k2_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 128LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 1.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* init_k3_init_normal: flat rows 128 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k3_init_normal(float *__restrict__ p0, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 16384;
        const int v7 = (v5) * (v6);
        const int v8 = (v7) + (v4);
        const float v9 = k_normal(key0, (unsigned long long)(long long)v8);
        const float v10 = 0.0199999996f;
        const float v11 = (v10) * (v9);
        p0[v4] = v11;
    }
}

/* init_k8_init_normal: flat rows 344 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k8_init_normal(float *__restrict__ p0, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 44032LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 44032;
        const int v7 = (v5) * (v6);
        const int v8 = (v7) + (v4);
        const float v9 = k_normal(key0, (unsigned long long)(long long)v8);
        const float v10 = 0.0199999996f;
        const float v11 = (v10) * (v9);
        p0[v4] = v11;
    }
}

/* init_k10_init_normal: flat rows 128 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k10_init_normal(float *__restrict__ p0, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 44032LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 44032;
        const int v7 = (v5) * (v6);
        const int v8 = (v7) + (v4);
        const float v9 = k_normal(key0, (unsigned long long)(long long)v8);
        const float v10 = 0.0199999996f;
        const float v11 = (v10) * (v9);
        p0[v4] = v11;
    }
}

/* init_k40_init_uniform: flat rows 8 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k40_init_uniform(float *__restrict__ p0, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 1024;
        const int v7 = (v5) * (v6);
        const int v8 = (v7) + (v4);
        const float v9 = k_uniform(key0, (unsigned long long)(long long)v8);
        const float v10 = 1.0f;
        const float v11 = 2.0f;
        const float v12 = (v11) * (v9);
        const float v13 = (v12) - (v10);
        const float v14 = 0.0883883461f;
        const float v15 = (v14) * (v13);
        p0[v4] = v15;
    }
}

/* init_k41_fill: flat rows 1 x cols 1024, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k41_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 0.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* init_k49_fill: flat rows 1 x cols 2752, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k49_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 0.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* init_k52_init_uniform: flat rows 8 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k52_init_uniform(float *__restrict__ p0, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 2752;
        const int v7 = (v5) * (v6);
        const int v8 = (v7) + (v4);
        const float v9 = k_uniform(key0, (unsigned long long)(long long)v8);
        const float v10 = 1.0f;
        const float v11 = 2.0f;
        const float v12 = (v11) * (v9);
        const float v13 = (v12) - (v10);
        const float v14 = 0.0539163873f;
        const float v15 = (v14) * (v13);
        p0[v4] = v15;
    }
}

/* init_k96_fill: flat rows 1 x cols 32768, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k96_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 32768LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 0.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* init_k98_fill: flat rows 1 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k98_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 128LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 0.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* init_k100_fill: flat rows 1 x cols 16384, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k100_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 0.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* init_k110_fill: flat rows 1 x cols 44032, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) init_k110_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 44032LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const float v0 = 0.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* train_full_k0_embedding: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k0_embedding(const int *__restrict__ p0, const float *__restrict__ p1, float *__restrict__ p2)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = o0;
        const int v1 = 128;
        const int v2 = (v0) * (v1);
        const int v3 = p0[v0];
        const int v4 = 128;
        const long long v5 = ((long long)v3) * ((long long)v4);
        const int v6 = j;
        const long long v7 = (v5) + ((long long)v6);
        const float v8 = p1[v7];
        const int v9 = (v2) + (v6);
        p2[v9] = v8;
    }
}

/* train_full_k1_rmsnorm: warp rows 1024 x cols 128, 2 phases */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k1_rmsnorm(const float *__restrict__ p0, const float *__restrict__ p1, float *__restrict__ p2)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 1024LL; r += (int)gridDim.x * 8) {
        const int o0 = (int)r;
        const int v0 = o0;
        const int v1 = 128;
        const int v2 = (v0) * (v1);
        float r7;
        {
            float acc7 = 0.0f;
            for (int j = lane; j < 128; j += 32) {
                const int v3 = j;
                const int v4 = (v2) + (v3);
                const float v5 = p0[v4];
                const float v6 = (v5) * (v5);
                acc7 += v6;
            }
            r7 = k_warp_sum(acc7);
        }
        __syncwarp();
        {
            for (int j = lane; j < 128; j += 32) {
                const int v8 = j;
                const float v9 = p1[v8];
                const float v10 = 9.99999975e-06f;
                const float v11 = 0.0078125f;
                const float v12 = (r7) * (v11);
                const float v13 = (v12) + (v10);
                const float v14 = sqrtf((v13));
                const float v15 = 1.0f;
                const float v16 = (v15) / (v14);
                const int v17 = j;
                const int v18 = (v2) + (v17);
                const float v19 = p0[v18];
                const float v20 = (v19) * (v16);
                const float v21 = (v20) * (v9);
                p2[v18] = v21;
            }
        }
        __syncwarp();
    }
}

/* train_full_k3_rope: flat rows 4096 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k3_rope(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = o0;
        const int v1 = 32;
        const int v2 = (v0) * (v1);
        const int v3 = 128;
        const int v4 = 4;
        const int v5 = (v0) / (v4);
        const int v6 = (v5) % (v3);
        const float v7 = (float)(v6);
        const int v8 = j;
        const int v9 = 16;
        const int v10 = (v8) < (v9);
        const int v11 = 16;
        const int v12 = (v8) % (v11);
        const float v13 = -0.575646281f;
        const float v14 = (float)(v12);
        const float v15 = (v14) * (v13);
        const float v16 = expf((v15));
        const float v17 = (v7) * (v16);
        const float v18 = cosf((v17));
        const float v19 = sinf((v17));
        const int v20 = (v2) + (v8);
        const float v21 = p0[v20];
        const int v22 = 16;
        const int v23 = (v8) - (v22);
        const int v24 = 16;
        const int v25 = (v8) + (v24);
        const int v26 = (v10) ? (v25) : (v23);
        const int v27 = (v2) + (v26);
        const float v28 = p0[v27];
        const float v29 = -(v19);
        const float v30 = (v10) ? (v29) : (v19);
        const float v31 = (v28) * (v30);
        const float v32 = (v21) * (v18);
        const float v33 = (v32) + (v31);
        const int v34 = (v2) + (v8);
        p1[v34] = v33;
    }
}

/* train_full_k4_transpose: flat rows 4096 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k4_transpose(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = 32;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 32;
        const int v7 = (v4) % (v6);
        const int v8 = 1;
        const int v9 = (v7) * (v8);
        const int v10 = (v5) + (v9);
        const int v11 = 32;
        const int v12 = (v4) / (v11);
        const int v13 = 128;
        const int v14 = (v12) % (v13);
        const int v15 = 128;
        const int v16 = (v14) * (v15);
        const int v17 = (v10) + (v16);
        const int v18 = 128;
        const int v19 = (v12) / (v18);
        const int v20 = 4;
        const int v21 = (v19) % (v20);
        const int v22 = 32;
        const int v23 = (v21) * (v22);
        const int v24 = (v17) + (v23);
        const int v25 = 4;
        const int v26 = (v19) / (v25);
        const int v27 = 8;
        const int v28 = (v26) % (v27);
        const int v29 = 16384;
        const int v30 = (v28) * (v29);
        const int v31 = (v24) + (v30);
        const float v32 = p0[v31];
        p1[v4] = v32;
    }
}

/* train_full_k10_attention: attention forward B 8 H 4 Hkv 4 T 128 D 32, tiles 64 x 64, causal */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k10_attention(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v, float *__restrict__ y, float *__restrict__ lse)
{
    enum { T = 128, D = 32, TQ = 64, TK = 64, KD = D + 1, H = 4, G = 1, NT = 256, ACC = 8 };
    const float scale = 0.176776692f;
    RELORAC_DYN_SMEM(smem);
    float *Qs = smem, *Ks = Qs + TQ * D, *Vs = Ks + TK * KD, *S = Vs + TK * D;
    float *ms = S + TQ * TK, *ls = ms + TQ, *cs = ls + TQ;
    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int qt = (int)(blockIdx.x % ((T + TQ - 1) / TQ)), bh = (int)(blockIdx.x / ((T + TQ - 1) / TQ));
    const int h = bh % H, b = bh / H, g = h / G;
    const int i0 = qt * TQ, nr = T - i0 < TQ ? T - i0 : TQ;
    const float *qb = q + ((long long)bh * T + i0) * D;
    const float *kb = k + ((long long)(b * (H / G) + g) * T) * D;
    const float *vb = v + ((long long)(b * (H / G) + g) * T) * D;
    for (int e = tid; e < TQ * D; e += NT)
        Qs[e] = e < nr * D ? qb[e] : 0.0f;
    for (int r = tid; r < TQ; r += NT) {
        ms[r] = __uint_as_float(0xff800000u);
        ls[r] = 0.0f;
    }
    float acc[ACC];
#pragma unroll
    for (int u = 0; u < ACC; u++)
        acc[u] = 0.0f;
    const int last = i0 + nr - 1;
    for (int j0 = 0; j0 <= last; j0 += TK) {
        const int nc = T - j0 < TK ? T - j0 : TK;
        __syncthreads();
        for (int e = tid; e < TK * D; e += NT) {
            const int c = e / D, d = e % D;
            Ks[c * KD + d] = c < nc ? kb[(long long)(j0 + c) * D + d] : 0.0f;
            Vs[e] = c < nc ? vb[(long long)(j0 + c) * D + d] : 0.0f;
        }
        __syncthreads();
        for (int e = tid; e < TQ * TK; e += NT) {
            const int r = e / TK, c = e % TK;
            float sv = __uint_as_float(0xff800000u);
            if (r < nr && c < nc && j0 + c <= i0 + r) {
                float sum = 0.0f;
                for (int d = 0; d < D; d++)
                    sum += Qs[r * D + d] * Ks[c * KD + d];
                sv = scale * sum;
            }
            S[e] = sv;
        }
        __syncthreads();
        for (int r = warp; r < TQ; r += NT / 32) {
            const float m0 = ms[r];
            float mx = m0;
            for (int c = lane; c < TK; c += 32)
                mx = fmaxf(mx, S[r * TK + c]);
            mx = k_warp_max(mx);
            const int dead = mx == __uint_as_float(0xff800000u); /* no key yet (padding rows) */
            float sum = 0.0f;
            for (int c = lane; c < TK; c += 32) {
                const float p = dead ? 0.0f : expf(S[r * TK + c] - mx);
                S[r * TK + c] = p;
                sum += p;
            }
            sum = k_warp_sum(sum);
            if (lane == 0) {
                const float corr = dead ? 1.0f : expf(m0 - mx);
                cs[r] = corr;
                ls[r] = ls[r] * corr + sum;
                ms[r] = mx;
            }
        }
        __syncthreads();
#pragma unroll
        for (int u = 0; u < ACC; u++) {
            const int e = tid + u * NT, r = e / D, d = e % D;
            if (e < TQ * D) {
                float sum = 0.0f;
                for (int c = 0; c < nc; c++)
                    sum += S[r * TK + c] * Vs[c * D + d];
                acc[u] = acc[u] * cs[r] + sum;
            }
        }
    }
    float *yb = y + ((long long)bh * T + i0) * D;
#pragma unroll
    for (int u = 0; u < ACC; u++) {
        const int e = tid + u * NT, r = e / D;
        if (e < TQ * D && r < nr)
            yb[e] = acc[u] / ls[r];
    }
    for (int r = tid; r < nr; r += NT)
        lse[(long long)bh * T + i0 + r] = ms[r] + logf(ls[r]);
}

/* train_full_k11_transpose: flat rows 4096 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k11_transpose(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = 32;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 32;
        const int v7 = (v4) % (v6);
        const int v8 = 1;
        const int v9 = (v7) * (v8);
        const int v10 = (v5) + (v9);
        const int v11 = 32;
        const int v12 = (v4) / (v11);
        const int v13 = 4;
        const int v14 = (v12) % (v13);
        const int v15 = 4096;
        const int v16 = (v14) * (v15);
        const int v17 = (v10) + (v16);
        const int v18 = 4;
        const int v19 = (v12) / (v18);
        const int v20 = 128;
        const int v21 = (v19) % (v20);
        const int v22 = 32;
        const int v23 = (v21) * (v22);
        const int v24 = (v17) + (v23);
        const int v25 = 128;
        const int v26 = (v19) / (v25);
        const int v27 = 8;
        const int v28 = (v26) % (v27);
        const int v29 = 16384;
        const int v30 = (v28) * (v29);
        const int v31 = (v24) + (v30);
        const float v32 = p0[v31];
        p1[v4] = v32;
    }
}

/* train_full_k13_add: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k13_add(const float *__restrict__ p0, const float *p1, float *p2)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = (v5) + (v6);
        p2[v4] = v7;
    }
}

/* train_full_k17_fused: flat rows 1024 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k17_fused(const float *__restrict__ p0, float *__restrict__ p1, const float *__restrict__ p2, float *__restrict__ p3)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 352256LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = -(v5);
        const float v7 = expf((v6));
        const float v8 = 1.0f;
        const float v9 = (v8) + (v7);
        const float v10 = 1.0f;
        const float v11 = (v10) / (v9);
        const float v12 = (v5) * (v11);
        p1[v4] = v12;
        const float v14 = p2[v4];
        const float v15 = (v12) * (v14);
        p3[v4] = v15;
    }
}

/* train_full_k78_linear_cross_entropy_rows: head loss rows of a chunk, V 256, loss and gradient */
RELORAC_KERNEL void __launch_bounds__(64) train_full_k78_linear_cross_entropy_rows(float *__restrict__ Z, const int *__restrict__ targets, int r0)
{
    enum { V = 256, R = 512 };
    __shared__ float k_red[32];
    const int r = (int)blockIdx.x, tid = (int)threadIdx.x;
    float *z = Z + (long long)r * V;
    const int tg = targets[r0 + r];
    const float zt = z[tg];
    float mx = __uint_as_float(0xff800000u);
    for (int j = tid; j < V; j += 64)
        mx = fmaxf(mx, z[j]);
    mx = k_block_max(mx, k_red);
    float s = 0.0f;
    for (int j = tid; j < V; j += 64)
        s += expf(z[j] - mx);
    s = k_block_sum(s, k_red);
    const float lse = mx + logf(s);
    if (tid == 0)
        Z[(long long)R * V + r] = lse - zt;
    const float gs = 1.0f / 1024.0f;
    for (int j = tid; j < V; j += 64) {
        const float g = gs * (expf(z[j] - lse) - (j == tg ? 1.0f : 0.0f));
        z[j] = g;
    }
}

/* train_full_k78_linear_cross_entropy_sum: the chunk's losses added in row order; the mean after the last chunk */
RELORAC_KERNEL void __launch_bounds__(1) train_full_k78_linear_cross_entropy_sum(const float *__restrict__ rl, double *__restrict__ total, float *__restrict__ loss, int n, int first, int last)
{
    double s = first ? 0.0 : total[0];
    for (int r = 0; r < n; r++)
        s += (double)rl[r];
    total[0] = s;
    if (last)
        loss[0] = (float)(s / 1024.0);
}

/* train_full_k79_fill: flat rows 1 x cols 1, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k79_fill(float *__restrict__ p0)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = 0;
        const float v0 = 1.0f;
        const int v1 = j;
        p0[v1] = v0;
    }
}

/* train_full_k80_rmsnorm_grad_x: warp rows 1024 x cols 128, 2 phases */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k80_rmsnorm_grad_x(const float *__restrict__ p0, const float *__restrict__ p1, const float *__restrict__ p2, float *__restrict__ p3)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 1024LL; r += (int)gridDim.x * 8) {
        const int o0 = (int)r;
        const int v0 = o0;
        const int v1 = 128;
        const int v2 = (v0) * (v1);
        float r7;
        float r13;
        {
            float acc7 = 0.0f;
            float acc13 = 0.0f;
            for (int j = lane; j < 128; j += 32) {
                const int v3 = j;
                const int v4 = (v2) + (v3);
                const float v5 = p0[v4];
                const float v6 = (v5) * (v5);
                acc7 += v6;
                const int v8 = j;
                const float v9 = p1[v8];
                const float v10 = p2[v4];
                const float v11 = (v10) * (v9);
                const float v12 = (v11) * (v5);
                acc13 += v12;
            }
            r7 = k_warp_sum(acc7);
            r13 = k_warp_sum(acc13);
        }
        __syncwarp();
        {
            for (int j = lane; j < 128; j += 32) {
                const float v14 = 9.99999975e-06f;
                const float v15 = 0.0078125f;
                const float v16 = (r7) * (v15);
                const float v17 = (v16) + (v14);
                const float v18 = sqrtf((v17));
                const float v19 = 1.0f;
                const float v20 = (v19) / (v18);
                const int v21 = j;
                const int v22 = (v2) + (v21);
                const float v23 = p0[v22];
                const int v24 = j;
                const float v25 = p1[v24];
                const float v26 = p2[v22];
                const float v27 = (v26) * (v25);
                const float v28 = (v20) * (v20);
                const float v29 = (v20) * (v28);
                const float v30 = (v23) * (r13);
                const float v31 = 0.0078125f;
                const float v32 = (v29) * (v31);
                const float v33 = (v32) * (v30);
                const float v34 = (v20) * (v27);
                const float v35 = (v34) - (v33);
                p3[v22] = v35;
            }
        }
        __syncwarp();
    }
}

/* train_full_k81_row_stats: warp rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k81_row_stats(const float *__restrict__ p0, float *__restrict__ p1)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 1024LL; r += (int)gridDim.x * 8) {
        const int o0 = (int)r;
        const int v0 = o0;
        const int v1 = 128;
        const int v2 = (v0) * (v1);
        float r7;
        {
            float acc7 = 0.0f;
            for (int j = lane; j < 128; j += 32) {
                const int v3 = j;
                const int v4 = (v2) + (v3);
                const float v5 = p0[v4];
                const float v6 = (v5) * (v5);
                acc7 += v6;
            }
            r7 = k_warp_sum(acc7);
        }
        __syncwarp();
        const float v8 = 9.99999975e-06f;
        const float v9 = 0.0078125f;
        const float v10 = (r7) * (v9);
        const float v11 = (v10) + (v8);
        const float v12 = sqrtf((v11));
        const float v13 = 1.0f;
        const float v14 = (v13) / (v12);
        if (lane == 0)
            p1[v0] = v14;
    }
}

/* train_full_k82_rmsnorm_grad_w: block rows 128 x cols 1024, 1 phase */
RELORAC_KERNEL void __launch_bounds__(128) train_full_k82_rmsnorm_grad_w(const float *__restrict__ p0, const float *__restrict__ p1, const float *__restrict__ p2, float *__restrict__ p3)
{
    __shared__ float k_red[1][32];
    const int lane = (int)threadIdx.x;
    for (int r = (int)blockIdx.x * 1 + (int)threadIdx.x / 128; r < 128LL; r += (int)gridDim.x * 1) {
        const int o0 = (int)r;
        const int v0 = o0;
        float r10;
        {
            float acc10 = 0.0f;
            for (int j = lane; j < 1024; j += 128) {
                const int v1 = j;
                const int v2 = 128;
                const int v3 = (v1) * (v2);
                const int v4 = (v3) + (v0);
                const float v5 = p0[v4];
                const float v6 = p1[v1];
                const float v7 = (v5) * (v6);
                const float v8 = p2[v4];
                const float v9 = (v8) * (v7);
                acc10 += v9;
            }
            r10 = k_block_sum(acc10, k_red[0]);
        }
        __syncthreads();
        if (lane == 0)
            p3[v0] = r10;
        __syncthreads();
    }
}

/* train_full_k85_fused: flat rows 1024 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k85_fused(const float *p0, const float *p1, const float *__restrict__ p2, float *p3, const float *__restrict__ p4, float *p5)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 352256LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = (v5) * (v6);
        const float v8 = p0[v4];
        const float v9 = p2[v4];
        const float v10 = (v8) * (v9);
        p3[v4] = v10;
        const float v12 = p4[v4];
        const float v13 = -(v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) + (v14);
        const float v17 = 1.0f;
        const float v18 = (v17) / (v16);
        const float v19 = 1.0f;
        const float v20 = (v19) - (v18);
        const float v21 = (v12) * (v20);
        const float v22 = 1.0f;
        const float v23 = (v22) + (v21);
        const float v24 = (v18) * (v23);
        const float v25 = (v7) * (v24);
        p5[v4] = v25;
    }
}

/* train_full_k89_add: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k89_add(const float *p0, const float *__restrict__ p1, float *p2)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = (v5) + (v6);
        p2[v4] = v7;
    }
}

/* train_full_k98_attention_grad: attention backward B 8 H 4 Hkv 4 T 128 D 32, tiles 64 x 64, causal */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k98_attention_grad(const float *__restrict__ dy, const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v, const float *__restrict__ y, const float *__restrict__ lse, float *__restrict__ dq, float *__restrict__ dk, float *__restrict__ dv)
{
    enum { T = 128, D = 32, TQ = 64, TK = 64, RD = D + 1, H = 4, G = 1, NT = 256, ACC = 8 };
    const float scale = 0.176776692f;
    RELORAC_DYN_SMEM(smem);
    float *Ks = smem, *Vs = Ks + TK * RD, *Qs = Vs + TK * RD, *dYs = Qs + TQ * RD;
    float *P = dYs + TQ * RD, *dS = P + TQ * TK, *lse_s = dS + TQ * TK, *delta_s = lse_s + TQ;
    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = (int)(blockIdx.x % (H / G)), b = (int)(blockIdx.x / (H / G));
    const float *kb = k + ((long long)(b * (H / G) + g) * T) * D;
    const float *vb = v + ((long long)(b * (H / G) + g) * T) * D;
    for (int h = g * G; h < (g + 1) * G; h++)
        for (int e = tid; e < T * D; e += NT)
            dq[((long long)(b * H + h) * T) * D + e] = 0.0f;
    for (int j0 = 0; j0 < T; j0 += TK) {
        const int nc = T - j0 < TK ? T - j0 : TK;
        __syncthreads();
        for (int e = tid; e < TK * D; e += NT) {
            const int c = e / D, d = e % D;
            Ks[c * RD + d] = c < nc ? kb[(long long)(j0 + c) * D + d] : 0.0f;
            Vs[c * RD + d] = c < nc ? vb[(long long)(j0 + c) * D + d] : 0.0f;
        }
        float dK[ACC], dV[ACC];
#pragma unroll
        for (int u = 0; u < ACC; u++)
            dK[u] = dV[u] = 0.0f;
        for (int h = g * G; h < (g + 1) * G; h++) {
            const long long hrow = (long long)(b * H + h) * T;
            for (int i0 = j0 / TQ * TQ; i0 < T; i0 += TQ) {
                const int nr = T - i0 < TQ ? T - i0 : TQ;
                __syncthreads();
                for (int e = tid; e < TQ * D; e += NT) {
                    const int r = e / D, d = e % D;
                    Qs[r * RD + d] = r < nr ? q[(hrow + i0 + r) * D + d] : 0.0f;
                    dYs[r * RD + d] = r < nr ? dy[(hrow + i0 + r) * D + d] : 0.0f;
                }
                for (int r = warp; r < TQ; r += NT / 32) {
                    float sum = 0.0f;
                    for (int d = lane; d < D; d += 32)
                        sum += r < nr ? dy[(hrow + i0 + r) * D + d] * y[(hrow + i0 + r) * D + d] : 0.0f;
                    sum = k_warp_sum(sum);
                    if (lane == 0) {
                        delta_s[r] = sum;
                        lse_s[r] = r < nr ? lse[hrow + i0 + r] : 0.0f;
                    }
                }
                __syncthreads();
                for (int e = tid; e < TQ * TK; e += NT) {
                    const int r = e / TK, c = e % TK;
                    float p = 0.0f, ds = 0.0f;
                    if (r < nr && c < nc && j0 + c <= i0 + r) {
                        float qk = 0.0f, dp = 0.0f;
                        for (int d = 0; d < D; d++) {
                            qk += Qs[r * RD + d] * Ks[c * RD + d];
                            dp += dYs[r * RD + d] * Vs[c * RD + d];
                        }
                        p = expf(scale * qk - lse_s[r]);
                        ds = p * (dp - delta_s[r]);
                    }
                    P[e] = p;
                    dS[e] = ds;
                }
                __syncthreads();
#pragma unroll
                for (int u = 0; u < ACC; u++) {
                    const int e = tid + u * NT, c = e / D, d = e % D;
                    if (e < TK * D) {
                        float sv = 0.0f, sk = 0.0f;
                        for (int r = 0; r < nr; r++) {
                            sv += P[r * TK + c] * dYs[r * RD + d];
                            sk += dS[r * TK + c] * Qs[r * RD + d];
                        }
                        dV[u] += sv;
                        dK[u] += scale * sk;
                    }
                }
                for (int e = tid; e < nr * D; e += NT) {
                    const int r = e / D, d = e % D;
                    float sum = 0.0f;
                    for (int c = 0; c < nc; c++)
                        sum += dS[r * TK + c] * Ks[c * RD + d];
                    dq[(hrow + i0 + r) * D + d] += scale * sum;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < ACC; u++) {
            const int e = tid + u * NT, c = e / D, d = e % D;
            if (e < TK * D && c < nc) {
                dk[((long long)(b * (H / G) + g) * T + j0 + c) * D + d] = dK[u];
                dv[((long long)(b * (H / G) + g) * T + j0 + c) * D + d] = dV[u];
            }
        }
    }
}

/* train_full_k103_rope: flat rows 4096 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k103_rope(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = o0;
        const int v1 = 32;
        const int v2 = (v0) * (v1);
        const int v3 = 128;
        const int v4 = 4;
        const int v5 = (v0) / (v4);
        const int v6 = (v5) % (v3);
        const float v7 = (float)(v6);
        const int v8 = j;
        const int v9 = 16;
        const int v10 = (v8) < (v9);
        const int v11 = 16;
        const int v12 = (v8) % (v11);
        const float v13 = -0.575646281f;
        const float v14 = (float)(v12);
        const float v15 = (v14) * (v13);
        const float v16 = expf((v15));
        const float v17 = (v7) * (v16);
        const float v18 = cosf((v17));
        const float v19 = sinf((v17));
        const float v20 = -(v19);
        const int v21 = (v2) + (v8);
        const float v22 = p0[v21];
        const int v23 = 16;
        const int v24 = (v8) - (v23);
        const int v25 = 16;
        const int v26 = (v8) + (v25);
        const int v27 = (v10) ? (v26) : (v24);
        const int v28 = (v2) + (v27);
        const float v29 = p0[v28];
        const float v30 = -(v20);
        const float v31 = (v10) ? (v30) : (v20);
        const float v32 = (v29) * (v31);
        const float v33 = (v22) * (v18);
        const float v34 = (v33) + (v32);
        const int v35 = (v2) + (v8);
        p1[v35] = v34;
    }
}

/* train_full_k109_fused: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_full_k109_fused(const float *p0, const float *__restrict__ p1, const float *__restrict__ p2, float *p3)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = (v5) + (v6);
        const float v8 = p2[v4];
        const float v9 = (v7) + (v8);
        p3[v4] = v9;
    }
}

/* train_full_k212_embedding_grad: serial rows 128 x cols 1024, 1 phase */
RELORAC_KERNEL void __launch_bounds__(128) train_full_k212_embedding_grad(const int *__restrict__ p0, const float *__restrict__ p1, float *__restrict__ p2)
{
    const int lane = 0;
    for (int r = (int)blockIdx.x * 128 + (int)threadIdx.x / 1; r < 128LL; r += (int)gridDim.x * 128) {
        const int o0 = (int)r;
        const int v0 = o0;
        {
            for (int j = lane; j < 1024; j += 1) {
                const int v1 = j;
                const int v2 = p0[v1];
                const int v3 = 128;
                const int v4 = (v1) * (v3);
                const int v5 = (v4) + (v0);
                const int v6 = 128;
                const long long v7 = ((long long)v2) * ((long long)v6);
                const long long v8 = (v7) + ((long long)v0);
                const float v9 = p1[v5];
                p2[v8] += v9;
            }
        }
    }
}

/* eval_k5_fused: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) eval_k5_fused(const float *p0, const float *__restrict__ p1, float *p2)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 128;
        const int v9 = (v4) / (v8);
        const int v10 = 128;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 136;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        p2[v4] = v18;
    }
}

/* eval_k19_attention: attention forward B 8 H 4 Hkv 4 T 128 D 32, tiles 64 x 64, causal */
RELORAC_KERNEL void __launch_bounds__(256) eval_k19_attention(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v, float *__restrict__ y)
{
    enum { T = 128, D = 32, TQ = 64, TK = 64, KD = D + 1, H = 4, G = 1, NT = 256, ACC = 8 };
    const float scale = 0.176776692f;
    RELORAC_DYN_SMEM(smem);
    float *Qs = smem, *Ks = Qs + TQ * D, *Vs = Ks + TK * KD, *S = Vs + TK * D;
    float *ms = S + TQ * TK, *ls = ms + TQ, *cs = ls + TQ;
    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int qt = (int)(blockIdx.x % ((T + TQ - 1) / TQ)), bh = (int)(blockIdx.x / ((T + TQ - 1) / TQ));
    const int h = bh % H, b = bh / H, g = h / G;
    const int i0 = qt * TQ, nr = T - i0 < TQ ? T - i0 : TQ;
    const float *qb = q + ((long long)bh * T + i0) * D;
    const float *kb = k + ((long long)(b * (H / G) + g) * T) * D;
    const float *vb = v + ((long long)(b * (H / G) + g) * T) * D;
    for (int e = tid; e < TQ * D; e += NT)
        Qs[e] = e < nr * D ? qb[e] : 0.0f;
    for (int r = tid; r < TQ; r += NT) {
        ms[r] = __uint_as_float(0xff800000u);
        ls[r] = 0.0f;
    }
    float acc[ACC];
#pragma unroll
    for (int u = 0; u < ACC; u++)
        acc[u] = 0.0f;
    const int last = i0 + nr - 1;
    for (int j0 = 0; j0 <= last; j0 += TK) {
        const int nc = T - j0 < TK ? T - j0 : TK;
        __syncthreads();
        for (int e = tid; e < TK * D; e += NT) {
            const int c = e / D, d = e % D;
            Ks[c * KD + d] = c < nc ? kb[(long long)(j0 + c) * D + d] : 0.0f;
            Vs[e] = c < nc ? vb[(long long)(j0 + c) * D + d] : 0.0f;
        }
        __syncthreads();
        for (int e = tid; e < TQ * TK; e += NT) {
            const int r = e / TK, c = e % TK;
            float sv = __uint_as_float(0xff800000u);
            if (r < nr && c < nc && j0 + c <= i0 + r) {
                float sum = 0.0f;
                for (int d = 0; d < D; d++)
                    sum += Qs[r * D + d] * Ks[c * KD + d];
                sv = scale * sum;
            }
            S[e] = sv;
        }
        __syncthreads();
        for (int r = warp; r < TQ; r += NT / 32) {
            const float m0 = ms[r];
            float mx = m0;
            for (int c = lane; c < TK; c += 32)
                mx = fmaxf(mx, S[r * TK + c]);
            mx = k_warp_max(mx);
            const int dead = mx == __uint_as_float(0xff800000u); /* no key yet (padding rows) */
            float sum = 0.0f;
            for (int c = lane; c < TK; c += 32) {
                const float p = dead ? 0.0f : expf(S[r * TK + c] - mx);
                S[r * TK + c] = p;
                sum += p;
            }
            sum = k_warp_sum(sum);
            if (lane == 0) {
                const float corr = dead ? 1.0f : expf(m0 - mx);
                cs[r] = corr;
                ls[r] = ls[r] * corr + sum;
                ms[r] = mx;
            }
        }
        __syncthreads();
#pragma unroll
        for (int u = 0; u < ACC; u++) {
            const int e = tid + u * NT, r = e / D, d = e % D;
            if (e < TQ * D) {
                float sum = 0.0f;
                for (int c = 0; c < nc; c++)
                    sum += S[r * TK + c] * Vs[c * D + d];
                acc[u] = acc[u] * cs[r] + sum;
            }
        }
    }
    float *yb = y + ((long long)bh * T + i0) * D;
#pragma unroll
    for (int u = 0; u < ACC; u++) {
        const int e = tid + u * NT, r = e / D;
        if (e < TQ * D && r < nr)
            yb[e] = acc[u] / ls[r];
    }
}

/* eval_k24_fused: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) eval_k24_fused(const float *p0, const float *__restrict__ p1, const float *__restrict__ p2, float *p3)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 128;
        const int v9 = (v4) / (v8);
        const int v10 = 128;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 136;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        const float v19 = p2[v4];
        const float v20 = (v19) + (v18);
        p3[v4] = v20;
    }
}

/* eval_k32_fused: flat rows 1024 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) eval_k32_fused(const float *p0, const float *__restrict__ p1, const float *__restrict__ p2, const float *__restrict__ p3, float *p4)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 352256LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 344;
        const int v9 = (v4) / (v8);
        const int v10 = 344;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 352;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        const float v19 = p2[v4];
        const float v20 = 2.0f;
        const float v21 = (v19) * (v20);
        const int v22 = 344;
        const int v23 = (v4) / (v22);
        const int v24 = 344;
        const int v25 = (v4) % (v24);
        const int v26 = 0;
        const int v27 = (v25) + (v26);
        const int v28 = 352;
        const int v29 = (v23) * (v28);
        const int v30 = (v29) + (v27);
        const float v31 = p3[v30];
        const float v32 = (v31) + (v21);
        const float v33 = -(v32);
        const float v34 = expf((v33));
        const float v35 = 1.0f;
        const float v36 = (v35) + (v34);
        const float v37 = 1.0f;
        const float v38 = (v37) / (v36);
        const float v39 = (v32) * (v38);
        const float v40 = (v39) * (v18);
        p4[v4] = v40;
    }
}

/* eval_k146_linear_cross_entropy_rows: head loss rows of a chunk, V 256, loss */
RELORAC_KERNEL void __launch_bounds__(64) eval_k146_linear_cross_entropy_rows(float *__restrict__ Z, const int *__restrict__ targets, int r0)
{
    enum { V = 256, R = 512 };
    __shared__ float k_red[32];
    const int r = (int)blockIdx.x, tid = (int)threadIdx.x;
    float *z = Z + (long long)r * V;
    const int tg = targets[r0 + r];
    const float zt = z[tg];
    float mx = __uint_as_float(0xff800000u);
    for (int j = tid; j < V; j += 64)
        mx = fmaxf(mx, z[j]);
    mx = k_block_max(mx, k_red);
    float s = 0.0f;
    for (int j = tid; j < V; j += 64)
        s += expf(z[j] - mx);
    s = k_block_sum(s, k_red);
    const float lse = mx + logf(s);
    if (tid == 0)
        Z[(long long)R * V + r] = lse - zt;
}

/* logits_k0_embedding: flat rows 128 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k0_embedding(const int *__restrict__ p0, const float *__restrict__ p1, float *__restrict__ p2)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = o0;
        const int v1 = 128;
        const int v2 = (v0) * (v1);
        const int v3 = p0[v0];
        const int v4 = 128;
        const long long v5 = ((long long)v3) * ((long long)v4);
        const int v6 = j;
        const long long v7 = (v5) + ((long long)v6);
        const float v8 = p1[v7];
        const int v9 = (v2) + (v6);
        p2[v9] = v8;
    }
}

/* logits_k1_rmsnorm: warp rows 128 x cols 128, 2 phases */
RELORAC_KERNEL void __launch_bounds__(256) logits_k1_rmsnorm(const float *__restrict__ p0, const float *__restrict__ p1, float *__restrict__ p2)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 128LL; r += (int)gridDim.x * 8) {
        const int o0 = (int)r;
        const int v0 = o0;
        const int v1 = 128;
        const int v2 = (v0) * (v1);
        float r7;
        {
            float acc7 = 0.0f;
            for (int j = lane; j < 128; j += 32) {
                const int v3 = j;
                const int v4 = (v2) + (v3);
                const float v5 = p0[v4];
                const float v6 = (v5) * (v5);
                acc7 += v6;
            }
            r7 = k_warp_sum(acc7);
        }
        __syncwarp();
        {
            for (int j = lane; j < 128; j += 32) {
                const int v8 = j;
                const float v9 = p1[v8];
                const float v10 = 9.99999975e-06f;
                const float v11 = 0.0078125f;
                const float v12 = (r7) * (v11);
                const float v13 = (v12) + (v10);
                const float v14 = sqrtf((v13));
                const float v15 = 1.0f;
                const float v16 = (v15) / (v14);
                const int v17 = j;
                const int v18 = (v2) + (v17);
                const float v19 = p0[v18];
                const float v20 = (v19) * (v16);
                const float v21 = (v20) * (v9);
                p2[v18] = v21;
            }
        }
        __syncwarp();
    }
}

/* logits_k5_fused: flat rows 128 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k5_fused(const float *p0, const float *__restrict__ p1, float *p2)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 128;
        const int v9 = (v4) / (v8);
        const int v10 = 128;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 136;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        p2[v4] = v18;
    }
}

/* logits_k6_rope: flat rows 512 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k6_rope(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = o0;
        const int v1 = 32;
        const int v2 = (v0) * (v1);
        const int v3 = 128;
        const int v4 = 4;
        const int v5 = (v0) / (v4);
        const int v6 = (v5) % (v3);
        const float v7 = (float)(v6);
        const int v8 = j;
        const int v9 = 16;
        const int v10 = (v8) < (v9);
        const int v11 = 16;
        const int v12 = (v8) % (v11);
        const float v13 = -0.575646281f;
        const float v14 = (float)(v12);
        const float v15 = (v14) * (v13);
        const float v16 = expf((v15));
        const float v17 = (v7) * (v16);
        const float v18 = cosf((v17));
        const float v19 = sinf((v17));
        const int v20 = (v2) + (v8);
        const float v21 = p0[v20];
        const int v22 = 16;
        const int v23 = (v8) - (v22);
        const int v24 = 16;
        const int v25 = (v8) + (v24);
        const int v26 = (v10) ? (v25) : (v23);
        const int v27 = (v2) + (v26);
        const float v28 = p0[v27];
        const float v29 = -(v19);
        const float v30 = (v10) ? (v29) : (v19);
        const float v31 = (v28) * (v30);
        const float v32 = (v21) * (v18);
        const float v33 = (v32) + (v31);
        const int v34 = (v2) + (v8);
        p1[v34] = v33;
    }
}

/* logits_k7_transpose: flat rows 512 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k7_transpose(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = 32;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 32;
        const int v7 = (v4) % (v6);
        const int v8 = 1;
        const int v9 = (v7) * (v8);
        const int v10 = (v5) + (v9);
        const int v11 = 32;
        const int v12 = (v4) / (v11);
        const int v13 = 128;
        const int v14 = (v12) % (v13);
        const int v15 = 128;
        const int v16 = (v14) * (v15);
        const int v17 = (v10) + (v16);
        const int v18 = 128;
        const int v19 = (v12) / (v18);
        const int v20 = 4;
        const int v21 = (v19) % (v20);
        const int v22 = 32;
        const int v23 = (v21) * (v22);
        const int v24 = (v17) + (v23);
        const int v25 = 4;
        const int v26 = (v19) / (v25);
        const int v27 = 1;
        const int v28 = (v26) % (v27);
        const int v29 = 16384;
        const int v30 = (v28) * (v29);
        const int v31 = (v24) + (v30);
        const float v32 = p0[v31];
        p1[v4] = v32;
    }
}

/* logits_k19_attention: attention forward B 1 H 4 Hkv 4 T 128 D 32, tiles 64 x 64, causal */
RELORAC_KERNEL void __launch_bounds__(256) logits_k19_attention(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v, float *__restrict__ y)
{
    enum { T = 128, D = 32, TQ = 64, TK = 64, KD = D + 1, H = 4, G = 1, NT = 256, ACC = 8 };
    const float scale = 0.176776692f;
    RELORAC_DYN_SMEM(smem);
    float *Qs = smem, *Ks = Qs + TQ * D, *Vs = Ks + TK * KD, *S = Vs + TK * D;
    float *ms = S + TQ * TK, *ls = ms + TQ, *cs = ls + TQ;
    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int qt = (int)(blockIdx.x % ((T + TQ - 1) / TQ)), bh = (int)(blockIdx.x / ((T + TQ - 1) / TQ));
    const int h = bh % H, b = bh / H, g = h / G;
    const int i0 = qt * TQ, nr = T - i0 < TQ ? T - i0 : TQ;
    const float *qb = q + ((long long)bh * T + i0) * D;
    const float *kb = k + ((long long)(b * (H / G) + g) * T) * D;
    const float *vb = v + ((long long)(b * (H / G) + g) * T) * D;
    for (int e = tid; e < TQ * D; e += NT)
        Qs[e] = e < nr * D ? qb[e] : 0.0f;
    for (int r = tid; r < TQ; r += NT) {
        ms[r] = __uint_as_float(0xff800000u);
        ls[r] = 0.0f;
    }
    float acc[ACC];
#pragma unroll
    for (int u = 0; u < ACC; u++)
        acc[u] = 0.0f;
    const int last = i0 + nr - 1;
    for (int j0 = 0; j0 <= last; j0 += TK) {
        const int nc = T - j0 < TK ? T - j0 : TK;
        __syncthreads();
        for (int e = tid; e < TK * D; e += NT) {
            const int c = e / D, d = e % D;
            Ks[c * KD + d] = c < nc ? kb[(long long)(j0 + c) * D + d] : 0.0f;
            Vs[e] = c < nc ? vb[(long long)(j0 + c) * D + d] : 0.0f;
        }
        __syncthreads();
        for (int e = tid; e < TQ * TK; e += NT) {
            const int r = e / TK, c = e % TK;
            float sv = __uint_as_float(0xff800000u);
            if (r < nr && c < nc && j0 + c <= i0 + r) {
                float sum = 0.0f;
                for (int d = 0; d < D; d++)
                    sum += Qs[r * D + d] * Ks[c * KD + d];
                sv = scale * sum;
            }
            S[e] = sv;
        }
        __syncthreads();
        for (int r = warp; r < TQ; r += NT / 32) {
            const float m0 = ms[r];
            float mx = m0;
            for (int c = lane; c < TK; c += 32)
                mx = fmaxf(mx, S[r * TK + c]);
            mx = k_warp_max(mx);
            const int dead = mx == __uint_as_float(0xff800000u); /* no key yet (padding rows) */
            float sum = 0.0f;
            for (int c = lane; c < TK; c += 32) {
                const float p = dead ? 0.0f : expf(S[r * TK + c] - mx);
                S[r * TK + c] = p;
                sum += p;
            }
            sum = k_warp_sum(sum);
            if (lane == 0) {
                const float corr = dead ? 1.0f : expf(m0 - mx);
                cs[r] = corr;
                ls[r] = ls[r] * corr + sum;
                ms[r] = mx;
            }
        }
        __syncthreads();
#pragma unroll
        for (int u = 0; u < ACC; u++) {
            const int e = tid + u * NT, r = e / D, d = e % D;
            if (e < TQ * D) {
                float sum = 0.0f;
                for (int c = 0; c < nc; c++)
                    sum += S[r * TK + c] * Vs[c * D + d];
                acc[u] = acc[u] * cs[r] + sum;
            }
        }
    }
    float *yb = y + ((long long)bh * T + i0) * D;
#pragma unroll
    for (int u = 0; u < ACC; u++) {
        const int e = tid + u * NT, r = e / D;
        if (e < TQ * D && r < nr)
            yb[e] = acc[u] / ls[r];
    }
}

/* logits_k20_transpose: flat rows 512 x cols 32, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k20_transpose(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 32;
        const int o0 = (int)(e / 32);
        const int v0 = 32;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 0;
        const int v6 = 32;
        const int v7 = (v4) % (v6);
        const int v8 = 1;
        const int v9 = (v7) * (v8);
        const int v10 = (v5) + (v9);
        const int v11 = 32;
        const int v12 = (v4) / (v11);
        const int v13 = 4;
        const int v14 = (v12) % (v13);
        const int v15 = 4096;
        const int v16 = (v14) * (v15);
        const int v17 = (v10) + (v16);
        const int v18 = 4;
        const int v19 = (v12) / (v18);
        const int v20 = 128;
        const int v21 = (v19) % (v20);
        const int v22 = 32;
        const int v23 = (v21) * (v22);
        const int v24 = (v17) + (v23);
        const int v25 = 128;
        const int v26 = (v19) / (v25);
        const int v27 = 1;
        const int v28 = (v26) % (v27);
        const int v29 = 16384;
        const int v30 = (v28) * (v29);
        const int v31 = (v24) + (v30);
        const float v32 = p0[v31];
        p1[v4] = v32;
    }
}

/* logits_k24_fused: flat rows 128 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k24_fused(const float *p0, const float *__restrict__ p1, const float *__restrict__ p2, float *p3)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 128;
        const int v9 = (v4) / (v8);
        const int v10 = 128;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 136;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        const float v19 = p2[v4];
        const float v20 = (v19) + (v18);
        p3[v4] = v20;
    }
}

/* logits_k32_fused: flat rows 128 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) logits_k32_fused(const float *p0, const float *__restrict__ p1, const float *__restrict__ p2, const float *__restrict__ p3, float *p4)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 44032LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 344;
        const int v9 = (v4) / (v8);
        const int v10 = 344;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 352;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        const float v19 = p2[v4];
        const float v20 = 2.0f;
        const float v21 = (v19) * (v20);
        const int v22 = 344;
        const int v23 = (v4) / (v22);
        const int v24 = 344;
        const int v25 = (v4) % (v24);
        const int v26 = 0;
        const int v27 = (v25) + (v26);
        const int v28 = 352;
        const int v29 = (v23) * (v28);
        const int v30 = (v29) + (v27);
        const float v31 = p3[v30];
        const float v32 = (v31) + (v21);
        const float v33 = -(v32);
        const float v34 = expf((v33));
        const float v35 = 1.0f;
        const float v36 = (v35) + (v34);
        const float v37 = 1.0f;
        const float v38 = (v37) / (v36);
        const float v39 = (v32) * (v38);
        const float v40 = (v39) * (v18);
        p4[v4] = v40;
    }
}

/* train_lora_k4_slice: flat rows 1024 x cols 8, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k4_slice(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 8192LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 8;
        const int o0 = (int)(e / 8);
        const int v0 = 8;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 128;
        const int v6 = 8;
        const int v7 = (v4) % (v6);
        const int v8 = 1;
        const int v9 = (v7) * (v8);
        const int v10 = (v5) + (v9);
        const int v11 = 8;
        const int v12 = (v4) / (v11);
        const int v13 = 128;
        const int v14 = (v12) % (v13);
        const int v15 = 136;
        const int v16 = (v14) * (v15);
        const int v17 = (v10) + (v16);
        const int v18 = 128;
        const int v19 = (v12) / (v18);
        const int v20 = 8;
        const int v21 = (v19) % (v20);
        const int v22 = 17408;
        const int v23 = (v21) * (v22);
        const int v24 = (v17) + (v23);
        const float v25 = p0[v24];
        p1[v4] = v25;
    }
}

/* train_lora_k32_slice: flat rows 1024 x cols 8, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k32_slice(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 8192LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 8;
        const int o0 = (int)(e / 8);
        const int v0 = 8;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v5 = 344;
        const int v6 = 8;
        const int v7 = (v4) % (v6);
        const int v8 = 1;
        const int v9 = (v7) * (v8);
        const int v10 = (v5) + (v9);
        const int v11 = 8;
        const int v12 = (v4) / (v11);
        const int v13 = 128;
        const int v14 = (v12) % (v13);
        const int v15 = 352;
        const int v16 = (v14) * (v15);
        const int v17 = (v10) + (v16);
        const int v18 = 128;
        const int v19 = (v12) / (v18);
        const int v20 = 8;
        const int v21 = (v19) % (v20);
        const int v22 = 45056;
        const int v23 = (v21) * (v22);
        const int v24 = (v17) + (v23);
        const float v25 = p0[v24];
        p1[v4] = v25;
    }
}

/* train_lora_k38_fused: flat rows 1024 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k38_fused(const float *p0, const float *__restrict__ p1, float *p2, const float *p3, const float *__restrict__ p4, float *p5, float *__restrict__ p6, float *__restrict__ p7)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 352256LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        const int v8 = 344;
        const int v9 = (v4) / (v8);
        const int v10 = 344;
        const int v11 = (v4) % (v10);
        const int v12 = 0;
        const int v13 = (v11) + (v12);
        const int v14 = 352;
        const int v15 = (v9) * (v14);
        const int v16 = (v15) + (v13);
        const float v17 = p1[v16];
        const float v18 = (v17) + (v7);
        p2[v4] = v18;
        const float v20 = p3[v4];
        const float v21 = 2.0f;
        const float v22 = (v20) * (v21);
        const int v23 = 344;
        const int v24 = (v4) / (v23);
        const int v25 = 344;
        const int v26 = (v4) % (v25);
        const int v27 = 0;
        const int v28 = (v26) + (v27);
        const int v29 = 352;
        const int v30 = (v24) * (v29);
        const int v31 = (v30) + (v28);
        const float v32 = p4[v31];
        const float v33 = (v32) + (v22);
        p5[v4] = v33;
        const float v35 = -(v33);
        const float v36 = expf((v35));
        const float v37 = 1.0f;
        const float v38 = (v37) + (v36);
        const float v39 = 1.0f;
        const float v40 = (v39) / (v38);
        const float v41 = (v33) * (v40);
        p6[v4] = v41;
        const float v43 = (v41) * (v18);
        p7[v4] = v43;
    }
}

/* train_lora_k179_scale: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k179_scale(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        p1[v4] = v7;
    }
}

/* train_lora_k185_fused: flat rows 1024 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k185_fused(const float *p0, const float *p1, const float *p2, float *p3, const float *__restrict__ p4, float *p5, float *p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 352256LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = (v5) * (v6);
        const float v8 = p0[v4];
        const float v9 = p2[v4];
        const float v10 = (v8) * (v9);
        p3[v4] = v10;
        const float v12 = p4[v4];
        const float v13 = -(v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) + (v14);
        const float v17 = 1.0f;
        const float v18 = (v17) / (v16);
        const float v19 = 1.0f;
        const float v20 = (v19) - (v18);
        const float v21 = (v12) * (v20);
        const float v22 = 1.0f;
        const float v23 = (v22) + (v21);
        const float v24 = (v18) * (v23);
        const float v25 = (v7) * (v24);
        p5[v4] = v25;
        const float v27 = 2.0f;
        const float v28 = (v25) * (v27);
        p6[v4] = v28;
    }
}

/* train_lora_k191_scale: flat rows 1024 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k191_scale(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 352256LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = 2.0f;
        const float v7 = (v5) * (v6);
        p1[v4] = v7;
    }
}

/* train_lora_k201_fused: flat rows 1024 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) train_lora_k201_fused(const float *p0, const float *p1, float *p2, float *p3)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 131072LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = (v5) + (v6);
        p2[v4] = v7;
        const float v9 = 2.0f;
        const float v10 = (v7) * (v9);
        p3[v4] = v10;
    }
}

/* norm_full_k0_sumsq: block rows 1 x cols 32768, 1 phase */
RELORAC_KERNEL void __launch_bounds__(1024) norm_full_k0_sumsq(const float *__restrict__ p0, float *__restrict__ p1)
{
    __shared__ float k_red[1][32];
    const int lane = (int)threadIdx.x;
    for (int r = (int)blockIdx.x * 1 + (int)threadIdx.x / 1024; r < 1LL; r += (int)gridDim.x * 1) {
        float r3;
        {
            float acc3 = 0.0f;
            for (int j = lane; j < 32768; j += 1024) {
                const int v0 = j;
                const float v1 = p0[v0];
                const float v2 = (v1) * (v1);
                acc3 += v2;
            }
            r3 = k_block_sum(acc3, k_red[0]);
        }
        __syncthreads();
        if (lane == 0)
            p1[0] = r3;
        __syncthreads();
    }
}

/* norm_full_k1_sumsq: warp rows 1 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) norm_full_k1_sumsq(const float *__restrict__ p0, float *__restrict__ p1)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 1LL; r += (int)gridDim.x * 8) {
        float r3;
        {
            float acc3 = 0.0f;
            for (int j = lane; j < 128; j += 32) {
                const int v0 = j;
                const float v1 = p0[v0];
                const float v2 = (v1) * (v1);
                acc3 += v2;
            }
            r3 = k_warp_sum(acc3);
        }
        __syncwarp();
        if (lane == 0)
            p1[0] = r3;
    }
}

/* norm_full_k2_sumsq: block rows 1 x cols 16384, 1 phase */
RELORAC_KERNEL void __launch_bounds__(1024) norm_full_k2_sumsq(const float *__restrict__ p0, float *__restrict__ p1)
{
    __shared__ float k_red[1][32];
    const int lane = (int)threadIdx.x;
    for (int r = (int)blockIdx.x * 1 + (int)threadIdx.x / 1024; r < 1LL; r += (int)gridDim.x * 1) {
        float r3;
        {
            float acc3 = 0.0f;
            for (int j = lane; j < 16384; j += 1024) {
                const int v0 = j;
                const float v1 = p0[v0];
                const float v2 = (v1) * (v1);
                acc3 += v2;
            }
            r3 = k_block_sum(acc3, k_red[0]);
        }
        __syncthreads();
        if (lane == 0)
            p1[0] = r3;
        __syncthreads();
    }
}

/* norm_full_k7_sumsq: block rows 1 x cols 44032, 1 phase */
RELORAC_KERNEL void __launch_bounds__(1024) norm_full_k7_sumsq(const float *__restrict__ p0, float *__restrict__ p1)
{
    __shared__ float k_red[1][32];
    const int lane = (int)threadIdx.x;
    for (int r = (int)blockIdx.x * 1 + (int)threadIdx.x / 1024; r < 1LL; r += (int)gridDim.x * 1) {
        float r3;
        {
            float acc3 = 0.0f;
            for (int j = lane; j < 44032; j += 1024) {
                const int v0 = j;
                const float v1 = p0[v0];
                const float v2 = (v1) * (v1);
                acc3 += v2;
            }
            r3 = k_block_sum(acc3, k_red[0]);
        }
        __syncthreads();
        if (lane == 0)
            p1[0] = r3;
        __syncthreads();
    }
}

/* norm_full_k39_global_norm: warp rows 1 x cols 39, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) norm_full_k39_global_norm(const float *__restrict__ p0, float *__restrict__ p1)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 1LL; r += (int)gridDim.x * 8) {
        float r2;
        {
            float acc2 = 0.0f;
            for (int j = lane; j < 39; j += 32) {
                const int v0 = j;
                const float v1 = p0[v0];
                acc2 += v1;
            }
            r2 = k_warp_sum(acc2);
        }
        __syncwarp();
        const float v3 = sqrtf((r2));
        if (lane == 0)
            p1[0] = v3;
    }
}

/* norm_full_k40_store: flat rows 1 x cols 1, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) norm_full_k40_store(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = 0;
        const int o0 = (int)0;
        const int v0 = 1;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v6 = p0[0];
        p1[v4] = v6;
    }
}

/* update_full_k0_clip_scale: flat rows 1 x cols 1, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_full_k0_clip_scale(const float *__restrict__ p0, float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1LL; e += (int)(gridDim.x * blockDim.x)) {
        const float v1 = p0[0];
        const float v2 = 9.99999997e-07f;
        const float v3 = (v1) + (v2);
        const float v4 = 1.0f;
        const float v5 = (v4) / (v3);
        const float v6 = 1.0f;
        const float v7 = fminf((v6), (v5));
        p1[0] = v7;
    }
}

/* update_full_k1_adamw: flat rows 256 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_full_k1_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 32768LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 128;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_full_k2_adamw: flat rows 1 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_full_k2_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 128LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e;
        const int o0 = (int)0;
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 128;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_full_k3_adamw: flat rows 128 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_full_k3_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 16384LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 128;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_full_k8_adamw: flat rows 344 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_full_k8_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 44032LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 128;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_full_k10_adamw: flat rows 128 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_full_k10_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 44032LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 344;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* norm_lora_k11_sumsq: block rows 1 x cols 1024, 1 phase */
RELORAC_KERNEL void __launch_bounds__(128) norm_lora_k11_sumsq(const float *__restrict__ p0, float *__restrict__ p1)
{
    __shared__ float k_red[1][32];
    const int lane = (int)threadIdx.x;
    for (int r = (int)blockIdx.x * 1 + (int)threadIdx.x / 128; r < 1LL; r += (int)gridDim.x * 1) {
        float r3;
        {
            float acc3 = 0.0f;
            for (int j = lane; j < 1024; j += 128) {
                const int v0 = j;
                const float v1 = p0[v0];
                const float v2 = (v1) * (v1);
                acc3 += v2;
            }
            r3 = k_block_sum(acc3, k_red[0]);
        }
        __syncthreads();
        if (lane == 0)
            p1[0] = r3;
        __syncthreads();
    }
}

/* norm_lora_k20_sumsq: block rows 1 x cols 2752, 1 phase */
RELORAC_KERNEL void __launch_bounds__(512) norm_lora_k20_sumsq(const float *__restrict__ p0, float *__restrict__ p1)
{
    __shared__ float k_red[1][32];
    const int lane = (int)threadIdx.x;
    for (int r = (int)blockIdx.x * 1 + (int)threadIdx.x / 512; r < 1LL; r += (int)gridDim.x * 1) {
        float r3;
        {
            float acc3 = 0.0f;
            for (int j = lane; j < 2752; j += 512) {
                const int v0 = j;
                const float v1 = p0[v0];
                const float v2 = (v1) * (v1);
                acc3 += v2;
            }
            r3 = k_block_sum(acc3, k_red[0]);
        }
        __syncthreads();
        if (lane == 0)
            p1[0] = r3;
        __syncthreads();
    }
}

/* norm_lora_k67_global_norm: warp rows 1 x cols 67, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) norm_lora_k67_global_norm(const float *__restrict__ p0, float *__restrict__ p1)
{
    const int lane = (int)threadIdx.x % 32;
    for (int r = (int)blockIdx.x * 8 + (int)threadIdx.x / 32; r < 1LL; r += (int)gridDim.x * 8) {
        float r2;
        {
            float acc2 = 0.0f;
            for (int j = lane; j < 67; j += 32) {
                const int v0 = j;
                const float v1 = p0[v0];
                acc2 += v1;
            }
            r2 = k_warp_sum(acc2);
        }
        __syncwarp();
        const float v3 = sqrtf((r2));
        if (lane == 0)
            p1[0] = v3;
    }
}

/* update_lora_k12_adamw: flat rows 8 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_lora_k12_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 128;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_lora_k13_adamw: flat rows 128 x cols 8, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_lora_k13_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 8;
        const int o0 = (int)(e / 8);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 8;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_lora_k21_adamw: flat rows 344 x cols 8, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_lora_k21_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 8;
        const int o0 = (int)(e / 8);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 8;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* update_lora_k24_adamw: flat rows 8 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) update_lora_k24_adamw(const float *__restrict__ p0, const float *__restrict__ p1, const int *__restrict__ p2, const float *__restrict__ p3, float *__restrict__ p4, float *__restrict__ p5, float *__restrict__ p6)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const float v1 = p0[0];
        const float v3 = p1[0];
        const int v5 = p2[0];
        const float v6 = (float)(v5);
        const float v7 = -0.105360515f;
        const float v8 = (v6) * (v7);
        const float v9 = expf((v8));
        const float v10 = 1.0f;
        const float v11 = (v10) - (v9);
        const float v12 = -0.00100050028f;
        const float v13 = (v6) * (v12);
        const float v14 = expf((v13));
        const float v15 = 1.0f;
        const float v16 = (v15) - (v14);
        const int v17 = 344;
        const int v18 = o0;
        const int v19 = (v18) * (v17);
        const int v20 = j;
        const int v21 = (v19) + (v20);
        const float v22 = p3[v21];
        const float v23 = (v22) * (v3);
        const float v24 = 0.100000001f;
        const float v25 = (v24) * (v23);
        const float v26 = p4[v21];
        const float v27 = 0.899999976f;
        const float v28 = (v27) * (v26);
        const float v29 = (v28) + (v25);
        const float v30 = (v23) * (v23);
        const float v31 = 0.00100000005f;
        const float v32 = (v31) * (v30);
        const float v33 = p5[v21];
        const float v34 = 0.999000013f;
        const float v35 = (v34) * (v33);
        const float v36 = (v35) + (v32);
        p4[v21] = v29;
        p5[v21] = v36;
        const float v39 = p6[v21];
        const float v40 = (v29) / (v11);
        const float v41 = (v36) / (v16);
        const float v42 = 9.99999994e-09f;
        const float v43 = sqrtf((v41));
        const float v44 = (v43) + (v42);
        const float v45 = (v40) / (v44);
        const float v46 = 0.0f;
        const float v47 = (v1) * (v46);
        const float v48 = (v47) * (v39);
        const float v49 = (v39) - (v48);
        const float v50 = (v1) * (v45);
        const float v51 = (v49) - (v50);
        p6[v21] = v51;
    }
}

/* relora_reset_k1_init_uniform: flat rows 8 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) relora_reset_k1_init_uniform(const int *__restrict__ p0, float *__restrict__ p1, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v6 = p0[0];
        const int v7 = 1024;
        const long long v8 = ((long long)v6) * ((long long)v7);
        const long long v9 = (v8) + ((long long)v4);
        const float v10 = k_uniform(key0, (unsigned long long)v9);
        const float v11 = 1.0f;
        const float v12 = 2.0f;
        const float v13 = (v12) * (v10);
        const float v14 = (v13) - (v11);
        const float v15 = 0.0883883461f;
        const float v16 = (v15) * (v14);
        p1[v4] = v16;
    }
}

/* relora_reset_k4_relu_grad: flat rows 8 x cols 128, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) relora_reset_k4_relu_grad(float *__restrict__ p0, const float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 128;
        const int o0 = (int)(e / 128);
        const int v0 = 128;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = 0.0f;
        const float v8 = 0.0f;
        const int v9 = (v8) < (v6);
        const float v10 = (v9) ? (v5) : (v7);
        p0[v4] = v10;
    }
}

/* relora_reset_k6_relu_grad: flat rows 128 x cols 8, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) relora_reset_k6_relu_grad(float *__restrict__ p0, const float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 1024LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 8;
        const int o0 = (int)(e / 8);
        const int v0 = 8;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = 0.0f;
        const float v8 = 0.0f;
        const int v9 = (v8) < (v6);
        const float v10 = (v9) ? (v5) : (v7);
        p0[v4] = v10;
    }
}

/* relora_reset_k34_relu_grad: flat rows 344 x cols 8, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) relora_reset_k34_relu_grad(float *__restrict__ p0, const float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 8;
        const int o0 = (int)(e / 8);
        const int v0 = 8;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = 0.0f;
        const float v8 = 0.0f;
        const int v9 = (v8) < (v6);
        const float v10 = (v9) ? (v5) : (v7);
        p0[v4] = v10;
    }
}

/* relora_reset_k43_init_uniform: flat rows 8 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) relora_reset_k43_init_uniform(const int *__restrict__ p0, float *__restrict__ p1, unsigned long long seed, unsigned long long stream0)
{
    const unsigned long long key0 = k_splitmix64(seed ^ stream0);
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const int v6 = p0[0];
        const int v7 = 2752;
        const long long v8 = ((long long)v6) * ((long long)v7);
        const long long v9 = (v8) + ((long long)v4);
        const float v10 = k_uniform(key0, (unsigned long long)v9);
        const float v11 = 1.0f;
        const float v12 = 2.0f;
        const float v13 = (v12) * (v10);
        const float v14 = (v13) - (v11);
        const float v15 = 0.0539163873f;
        const float v16 = (v15) * (v14);
        p1[v4] = v16;
    }
}

/* relora_reset_k46_relu_grad: flat rows 8 x cols 344, 1 phase */
RELORAC_KERNEL void __launch_bounds__(256) relora_reset_k46_relu_grad(float *__restrict__ p0, const float *__restrict__ p1)
{
    for (int e = (int)blockIdx.x * blockDim.x + threadIdx.x; e < 2752LL; e += (int)(gridDim.x * blockDim.x)) {
        const int j = e % 344;
        const int o0 = (int)(e / 344);
        const int v0 = 344;
        const int v1 = o0;
        const int v2 = (v1) * (v0);
        const int v3 = j;
        const int v4 = (v2) + (v3);
        const float v5 = p0[v4];
        const float v6 = p1[v4];
        const float v7 = 0.0f;
        const float v8 = 0.0f;
        const int v9 = (v8) < (v6);
        const float v10 = (v9) ? (v5) : (v7);
        p0[v4] = v10;
    }
}
