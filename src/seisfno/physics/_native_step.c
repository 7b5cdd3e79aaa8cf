/* The forward time loop of seisfno.physics.fd on the CPU, fused by hand (see native.py).
 *
 * The same scheme as fd._step, term for term: the 8th-order Laplacian, the C-PML of
 * fd._cpml_axis on the edge strips (psi and zeta memory fields; x strips stored per row), the
 * 4th-order modified-equation update with its mask, the never-updated HALO frame, and sparse
 * Kaiser-sinc sources. Per step: pass A writes w = v2 (L u + cz + cx) + f s (the strips handled
 * inline, row by row), pass B writes u^{n+1} over u^{n-1} from the Laplacian of w. Only the
 * ordering of float operations differs from fd._step (tested against it to round-off).
 *
 * Build: cc -O3 -march=native -fopenmp -shared -fPIC (native.py; no Python headers needed).
 */
#include <stdint.h>
#include <string.h>

#define H 4

typedef struct {
    int B, NZ, NX, n_steps, v2_batched;
    const float *v2;                                   /* (B or 1, NZ, NX) */
    const int64_t *src_off, *src_idx;                  /* CSR by shot: flat NZ*NX indices */
    const float *src_val;
    const float *wav, *wav_tt;                         /* (n_steps) */
    const float *lw;                                   /* (NZ, NX) */
    int kz, Sz, kx, Sx;                                /* strips: count, width */
    const float *az, *bz, *dbz, *ax, *bx, *dbx;        /* (k, S) */
    const float *c2, *c1;                              /* STENCIL[0..4], STENCIL1[0..3] */
    float dt2, dt4_12, inv_dz, inv_dx;
    const uint8_t *record;                             /* (n_steps) */
    int nz_out, nx_out, off, stride;
    float *out;                                        /* (n_record, B, nz_out, nx_out) */
    float *u, *up, *w;                                 /* (B, NZ, NX), zero */
    float *psiz, *psiz2, *zetaz;                       /* (kz, B, Sz, NX), zero */
    float *psix, *psix2, *zetax;                       /* (kx, B, NZ, Sx), zero */
    int n_threads;
} Job;

/* Strip s and local index r of index i along an axis of n nodes with k strips of width S;
 * returns 0 outside the strips' computed part (local indices H .. S-H-1). */
static inline int strip_of(int i, int n, int k, int S, int *s, int *r) {
    if (k == 1) { *s = 0; *r = i; }
    else if (i < S) { *s = 0; *r = i; }
    else if (i >= n - S) { *s = 1; *r = i - (n - S); }
    else return 0;
    return *r >= H && *r < S - H;
}

static void pass_a(const Job *J, int b, int i, const float *psiz, float *psiz_new,
                   const float *psix, float *psix_new) {
    const int NZ = J->NZ, NX = J->NX, B = J->B;
    const float *restrict U = J->u + (int64_t)b * NZ * NX;
    float *restrict W = J->w + (int64_t)b * NZ * NX + (int64_t)i * NX;
    const float *restrict V = J->v2 + (J->v2_batched ? (int64_t)b * NZ * NX : 0)
                              + (int64_t)i * NX;
    const float idz2 = J->inv_dz * J->inv_dz, idx2 = J->inv_dx * J->inv_dx;
    const float *c2 = J->c2, *c1 = J->c1;
    const float cc = c2[0] * (idz2 + idx2);
    const float cz1 = c2[1] * idz2, cz2 = c2[2] * idz2, cz3 = c2[3] * idz2, cz4 = c2[4] * idz2;
    const float cx1 = c2[1] * idx2, cx2 = c2[2] * idx2, cx3 = c2[3] * idx2, cx4 = c2[4] * idx2;
    const float *restrict R = U + (int64_t)i * NX;
    const float *restrict Rm1 = R - NX, *restrict Rm2 = R - 2 * NX, *restrict Rm3 = R - 3 * NX,
                *restrict Rm4 = R - 4 * NX, *restrict Rp1 = R + NX, *restrict Rp2 = R + 2 * NX,
                *restrict Rp3 = R + 3 * NX, *restrict Rp4 = R + 4 * NX;
    #pragma GCC ivdep
    for (int j = H; j < NX - H; j++) {
        W[j] = cc * R[j] + cz1 * (Rp1[j] + Rm1[j]) + cx1 * (R[j + 1] + R[j - 1])
             + cz2 * (Rp2[j] + Rm2[j]) + cx2 * (R[j + 2] + R[j - 2])
             + cz3 * (Rp3[j] + Rm3[j]) + cx3 * (R[j + 3] + R[j - 3])
             + cz4 * (Rp4[j] + Rm4[j]) + cx4 * (R[j + 4] + R[j - 4]);
    }
    int s, r;
    if (strip_of(i, NZ, J->kz, J->Sz, &s, &r)) {  /* the z C-PML on this row */
        const int S = J->Sz;
        const float a = J->az[s * S + r], bb = J->bz[s * S + r], db = J->dbz[s * S + r];
        const float *ap = J->az + s * S;
        const int64_t base = ((int64_t)s * B + b) * S;
        const float *restrict P = psiz + base * NX;
        float *restrict Pn = psiz_new + base * NX + (int64_t)r * NX;
        float *restrict Z = J->zetaz + base * NX + (int64_t)r * NX;
        const float *restrict P0 = P + (int64_t)r * NX;
        const float *restrict Pp1 = P0 + NX, *restrict Pp2 = P0 + 2 * NX,
                    *restrict Pp3 = P0 + 3 * NX, *restrict Pp4 = P0 + 4 * NX,
                    *restrict Pm1 = P0 - NX, *restrict Pm2 = P0 - 2 * NX,
                    *restrict Pm3 = P0 - 3 * NX, *restrict Pm4 = P0 - 4 * NX;
        const float ap1 = ap[r + 1], ap2 = ap[r + 2], ap3 = ap[r + 3], ap4 = ap[r + 4];
        const float am1 = ap[r - 1], am2 = ap[r - 2], am3 = ap[r - 3], am4 = ap[r - 4];
        const float e1 = c1[0], e2 = c1[1], e3 = c1[2], e4 = c1[3];
        const float f0 = c2[0], f1 = c2[1], f2 = c2[2], f3 = c2[3], f4 = c2[4];
        const float idz = J->inv_dz, one_b = 1.f + bb;
        #pragma GCC ivdep
        for (int j = H; j < NX - H; j++) {
            const float d1 = e1 * (Rp1[j] - Rm1[j]) + e2 * (Rp2[j] - Rm2[j])
                           + e3 * (Rp3[j] - Rm3[j]) + e4 * (Rp4[j] - Rm4[j]);
            const float d2 = f0 * R[j] + f1 * (Rp1[j] + Rm1[j]) + f2 * (Rp2[j] + Rm2[j])
                           + f3 * (Rp3[j] + Rm3[j]) + f4 * (Rp4[j] + Rm4[j]);
            const float d1ap = e1 * (ap1 * Pp1[j] - am1 * Pm1[j]) + e2 * (ap2 * Pp2[j] - am2 * Pm2[j])
                             + e3 * (ap3 * Pp3[j] - am3 * Pm3[j]) + e4 * (ap4 * Pp4[j] - am4 * Pm4[j]);
            const float ux = d1 * idz, uxx = d2 * idz2;
            const float tmp = one_b * uxx + db * ux + d1ap * idz;
            const float z = Z[j];
            W[j] += one_b * tmp + a * z - uxx;
            Pn[j] = bb * ux + a * P0[j];
            Z[j] = bb * tmp + a * z;
        }
    }
    const int S = J->Sx;
    for (int s2 = 0; s2 < J->kx; s2++) {  /* the x C-PML on this row's strips */
        const int j0 = s2 == 0 ? 0 : NX - S;
        const float *restrict a = J->ax + s2 * S, *restrict bb = J->bx + s2 * S,
                             *restrict db = J->dbx + s2 * S;
        const int64_t base = (((int64_t)s2 * B + b) * NZ + i) * S;
        const float *restrict P = psix + base;
        float *restrict Pn = psix_new + base;
        float *restrict Z = J->zetax + base;
        const float *restrict Rj = R + j0;
        float *restrict Wj = W + j0;
        const float idx = J->inv_dx;
        const float e1 = c1[0], e2 = c1[1], e3 = c1[2], e4 = c1[3];
        const float f0 = c2[0], f1 = c2[1], f2 = c2[2], f3 = c2[3], f4 = c2[4];
        #pragma GCC ivdep
        for (int c = H; c < S - H; c++) {
            const float d1 = e1 * (Rj[c + 1] - Rj[c - 1]) + e2 * (Rj[c + 2] - Rj[c - 2])
                           + e3 * (Rj[c + 3] - Rj[c - 3]) + e4 * (Rj[c + 4] - Rj[c - 4]);
            const float d2 = f0 * Rj[c] + f1 * (Rj[c + 1] + Rj[c - 1]) + f2 * (Rj[c + 2] + Rj[c - 2])
                           + f3 * (Rj[c + 3] + Rj[c - 3]) + f4 * (Rj[c + 4] + Rj[c - 4]);
            const float d1ap = e1 * (a[c + 1] * P[c + 1] - a[c - 1] * P[c - 1])
                             + e2 * (a[c + 2] * P[c + 2] - a[c - 2] * P[c - 2])
                             + e3 * (a[c + 3] * P[c + 3] - a[c - 3] * P[c - 3])
                             + e4 * (a[c + 4] * P[c + 4] - a[c - 4] * P[c - 4]);
            const float ux = d1 * idx, uxx = d2 * idx2;
            const float one_b = 1.f + bb[c];
            const float tmp = one_b * uxx + db[c] * ux + d1ap * idx;
            const float z = Z[c];
            Wj[c] += one_b * tmp + a[c] * z - uxx;
            Pn[c] = bb[c] * ux + a[c] * P[c];
            Z[c] = bb[c] * tmp + a[c] * z;
        }
    }
    for (int j = H; j < NX - H; j++) W[j] *= V[j];
}

static void pass_b(const Job *J, int b, int i) {
    const int NZ = J->NZ, NX = J->NX;
    const int64_t o = (int64_t)b * NZ * NX + (int64_t)i * NX;
    const float *restrict R = J->w + o;
    const float *restrict U = J->u + o;
    float *restrict UP = J->up + o;
    const float *restrict V = J->v2 + (J->v2_batched ? (int64_t)b * NZ * NX : 0)
                              + (int64_t)i * NX;
    const float *restrict L = J->lw + (int64_t)i * NX;
    const float idz2 = J->inv_dz * J->inv_dz, idx2 = J->inv_dx * J->inv_dx;
    const float *c2 = J->c2;
    const float cc = c2[0] * (idz2 + idx2);
    const float cz1 = c2[1] * idz2, cz2 = c2[2] * idz2, cz3 = c2[3] * idz2, cz4 = c2[4] * idz2;
    const float cx1 = c2[1] * idx2, cx2 = c2[2] * idx2, cx3 = c2[3] * idx2, cx4 = c2[4] * idx2;
    const float *restrict Rm1 = R - NX, *restrict Rm2 = R - 2 * NX, *restrict Rm3 = R - 3 * NX,
                *restrict Rm4 = R - 4 * NX, *restrict Rp1 = R + NX, *restrict Rp2 = R + 2 * NX,
                *restrict Rp3 = R + 3 * NX, *restrict Rp4 = R + 4 * NX;
    const float dt2 = J->dt2, dt4 = J->dt4_12;
    #pragma GCC ivdep
    for (int j = H; j < NX - H; j++) {
        const float lap = cc * R[j] + cz1 * (Rp1[j] + Rm1[j]) + cx1 * (R[j + 1] + R[j - 1])
                        + cz2 * (Rp2[j] + Rm2[j]) + cx2 * (R[j + 2] + R[j - 2])
                        + cz3 * (Rp3[j] + Rm3[j]) + cx3 * (R[j + 3] + R[j - 3])
                        + cz4 * (Rp4[j] + Rm4[j]) + cx4 * (R[j + 4] + R[j - 4]);
        UP[j] = 2.f * U[j] - UP[j] + dt2 * R[j] + dt4 * (L[j] * (V[j] * lap));
    }
}

static void record_frame(const Job *J, int64_t k) {
    const int NZ = J->NZ, NX = J->NX;
    for (int b = 0; b < J->B; b++) {
        const float *U = J->u + (int64_t)b * NZ * NX;
        float *o = J->out + ((k * J->B + b) * J->nz_out) * (int64_t)J->nx_out;
        for (int i = 0; i < J->nz_out; i++) {
            const float *row = U + (int64_t)(J->off + i * J->stride) * NX + J->off;
            for (int j = 0; j < J->nx_out; j++) o[(int64_t)i * J->nx_out + j] = row[j * J->stride];
        }
    }
}

int seisfno_propagate(Job *J) {
    const int B = J->B, NZ = J->NZ, NX = J->NX;
    const int rows = NZ - 2 * H;
    const int64_t nn = (int64_t)NZ * NX;
    int64_t k = 0;
    float *psiz = J->psiz, *psiz_new = J->psiz2, *psix = J->psix, *psix_new = J->psix2;
    for (int n = 0; n < J->n_steps; n++) {
        if (J->record[n]) record_frame(J, k++);
        #pragma omp parallel for schedule(static) num_threads(J->n_threads)
        for (int t = 0; t < B * rows; t++)
            pass_a(J, t / rows, H + t % rows, psiz, psiz_new, psix, psix_new);
        const float s = J->wav[n], s_tt = J->wav_tt[n];
        for (int b = 0; b < B; b++)
            for (int64_t q = J->src_off[b]; q < J->src_off[b + 1]; q++)
                J->w[b * nn + J->src_idx[q]] += J->src_val[q] * s;
        #pragma omp parallel for schedule(static) num_threads(J->n_threads)
        for (int t = 0; t < B * rows; t++) pass_b(J, t / rows, H + t % rows);
        for (int b = 0; b < B; b++)
            for (int64_t q = J->src_off[b]; q < J->src_off[b + 1]; q++) {
                const int64_t x = J->src_idx[q];
                J->up[b * nn + x] += J->dt4_12 * (J->lw[x] * (J->src_val[q] * s_tt));
            }
        float *t;
        t = J->u; J->u = J->up; J->up = t;
        t = psiz; psiz = psiz_new; psiz_new = t;
        t = psix; psix = psix_new; psix_new = t;
    }
    J->psiz = psiz; J->psiz2 = psiz_new; J->psix = psix; J->psix2 = psix_new;  /* where they ended */
    return 0;
}

/* The struct's size, so that the caller can check its layout. */
int seisfno_job_size(void) { return (int)sizeof(Job); }
