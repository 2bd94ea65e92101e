/*
 * snapfusion.h - libsnapfusion, text-to-image diffusion on the CPU.
 *
 * The only public header of the library. It includes <stddef.h> and <stdint.h> only,
 * compiles as C99 and as C++, and every symbol it declares starts with sf_ / SF_.
 *
 * ABI rules (these never change within a major version):
 *  - All objects are opaque handles created and destroyed by the library. No struct
 *    layout is part of the ABI. Every *_destroy accepts NULL.
 *  - Every enum value is explicit and append-only. In the enums that choose something
 *    (sf_sampler, sf_prediction, sf_timestep_spacing) 0 means "the model's default"; other
 *    enums have no default value (sf_log_level is a scale whose 0 is DEBUG).
 *  - Options cross the ABI as sf_params objects with typed setters keyed by sf_param.
 *    A key that is never set means "default".
 *  - Every call that can fail returns sf_status, except accessors that document a sentinel
 *    for a NULL or unprepared handle (0, NaN, NULL). The message of the last failure is kept
 *    per thread (sf_last_error) and per context (sf_context_last_error).
 *  - Every buffer crosses with its size: inputs with their element count, outputs with
 *    their capacity; a mismatch is SF_ERR_INVALID_ARGUMENT with the expected size in the
 *    message. (The version-1 functions without sizes are deprecated: see SF_DEPRECATED.)
 *  - Ownership: pointers passed in are borrowed for the duration of the call unless
 *    stated otherwise; pointers returned through out-parameters are owned by the caller
 *    and released with the matching *_destroy; `const char *` results are owned by the
 *    library and valid as stated on each function.
 *  - Strings are UTF-8 and NUL-terminated. Paths are UTF-8.
 *  - Tensors cross the ABI as float32 in PyTorch's NCHW order for latents and images,
 *    and [batch, tokens, channels] for text embeddings, so values compare directly with
 *    diffusers. Pixels cross as packed RGB8, row-major, top row first.
 *
 * Threading (since 1.1):
 *  - A loaded pipeline is immutable; what a run changes lives in the run's own state. A run
 *    is a job (sf_job_start .. sf_job_destroy), an sf_generate / sf_generate_batch call, or
 *    one building-block call (sf_encode_*, sf_unet_predict_v2, sf_decode_latents_v2, ...).
 *    Runs on one pipeline may go on concurrently from different threads and give the same
 *    results as alone. They share the context's worker threads (their parallel sections
 *    take turns), so concurrency adds no speed; it lets an app keep one model in memory and
 *    serve several requests.
 *  - Each job must be used by one thread at a time (sf_job_cancel excepted); so must each
 *    sf_params, sf_image, sf_rng and sf_schedule object.
 *  - Safe from any thread at any time: sf_job_cancel, sf_pipeline_cancel, sf_last_error,
 *    sf_pipeline_get_int / _get_float, sf_status_string, sf_version*.
 *  - Not while runs of the context are in flight: sf_pipeline_destroy (of that pipeline),
 *    sf_context_destroy, sf_context_set_log_callback. sf_context_set_int(SF_PARAM_THREADS)
 *    returns SF_ERR_BAD_STATE while a network call of the context is running (or a load:
 *    loading packs the weights on the context's worker threads).
 *  - sf_context_last_error is shared by all threads of a context: with concurrent runs, use
 *    sf_last_error (per thread) instead.
 *  - The log callback is called on the thread that made the failing or logging call.
 * Distinct contexts are independent.
 */
#ifndef SNAPFUSION_H
#define SNAPFUSION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(SF_BUILDING_LIBRARY)
#define SF_API __declspec(dllexport)
#elif defined(__GNUC__) && defined(SF_BUILDING_LIBRARY)
#define SF_API __attribute__((visibility("default")))
#else
#define SF_API
#endif

/* Marks a function kept for ABI compatibility that new code should not use; the message
 * names its successor. Define SF_NO_DEPRECATION_WARNINGS to silence it. */
#if defined(SF_NO_DEPRECATION_WARNINGS) || defined(SF_BUILDING_LIBRARY)
#define SF_DEPRECATED(msg)
#elif defined(__GNUC__) || defined(__clang__)
#define SF_DEPRECATED(msg) __attribute__((deprecated(msg)))
#elif defined(_MSC_VER)
#define SF_DEPRECATED(msg) __declspec(deprecated(msg))
#else
#define SF_DEPRECATED(msg)
#endif

/* ---------------------------------------------------------------------------------- */
/* Versions                                                                            */
/* ---------------------------------------------------------------------------------- */

/* One versioning story: the library version's MAJOR is the ABI version, which is also the
 * SONAME (libsnapfusion.so.1) and what find_package(snapfusion 1) and pkg-config match.
 * MINOR grows with every release that adds to the ABI (a new version-script node,
 * SNAPFUSION_1.MINOR); PATCH for fixes. */
#define SF_VERSION_MAJOR 1
#define SF_VERSION_MINOR 1
#define SF_VERSION_PATCH 0
#define SF_VERSION_STRING "1.1.0"
/* Bumped only when the ABI breaks (then the SONAME changes with it). */
#define SF_ABI_VERSION 1

/* "MAJOR.MINOR.PATCH"; static storage. */
SF_API const char *sf_version(void);
/* MAJOR*10000 + MINOR*100 + PATCH of the library actually loaded. */
SF_API int sf_version_number(void);
/* SF_ABI_VERSION of the library actually loaded; compare with the macro at start-up. */
SF_API int sf_abi_version(void);

/* ---------------------------------------------------------------------------------- */
/* Status codes                                                                        */
/* ---------------------------------------------------------------------------------- */

typedef enum sf_status {
  SF_OK = 0,
  SF_ERR_INVALID_ARGUMENT = 1, /* a NULL, out-of-range or inconsistent argument */
  SF_ERR_IO = 2,               /* a file could not be opened, read, mapped or written */
  SF_ERR_BAD_MODEL = 3,        /* a model file or config is malformed or inconsistent */
  SF_ERR_UNSUPPORTED = 4,      /* valid input this build cannot handle (message says what) */
  SF_ERR_OUT_OF_MEMORY = 5,
  SF_ERR_CANCELLED = 6,        /* stopped by sf_*_cancel or a progress callback */
  SF_ERR_BACKEND = 7,          /* XNNPACK / pthreadpool / cpuinfo reported a failure */
  SF_ERR_BAD_STATE = 8,        /* the call is not valid in the object's current state */
  SF_ERR_INTERNAL = 9,         /* a bug in the library; please report the message */
  SF_ERR_NOT_FOUND = 10        /* a named item (tensor, component, key) does not exist */
} sf_status;

/* Short constant description of a status ("invalid argument"); never NULL. */
SF_API const char *sf_status_string(sf_status status);

/* Message of the last failure on the calling thread, whatever object it came from;
 * "" if none. Valid until the next failing call on this thread. */
SF_API const char *sf_last_error(void);

/* ---------------------------------------------------------------------------------- */
/* Parameters: a typed key/value bag used for context, load and generation options     */
/* ---------------------------------------------------------------------------------- */

typedef struct sf_params sf_params;

typedef enum sf_param {
  /* Context (sf_context_set_int). */
  SF_PARAM_THREADS = 1,         /* int: worker threads; <= 0 means one per core */
  SF_PARAM_LOG_LEVEL = 2,       /* int sf_log_level: least severe level delivered */

  /* Loading (sf_pipeline_load). */
  SF_PARAM_VARIANT = 100,       /* string: prefer *.VARIANT.safetensors, e.g. "fp16" */
  SF_PARAM_RANDOM_WEIGHTS = 101,/* int 0/1: ignore checkpoints, use seeded random weights */
  SF_PARAM_RANDOM_SEED = 102,   /* int: seed for SF_PARAM_RANDOM_WEIGHTS (default 0) */
  SF_PARAM_INSPECT_ONLY = 103,  /* int 0/1: check the folder without loading it: every config
                                 * parsed, every network's architecture built and every
                                 * checkpoint tensor checked against it (names, shapes, types,
                                 * tensors left over) without reading or packing a weight; every
                                 * problem found is logged (SF_LOG_ERROR) and counted in the
                                 * error, whose message lists as many as fit. The pipeline runs
                                 * nothing (SF_INFO_NETWORKS is 0) but answers the shape queries,
                                 * SF_INFO_WEIGHT_BYTES (what the load would pack) and
                                 * sf_pipeline_estimate_memory. */
  SF_PARAM_TAESD_PATH = 104,    /* string: a TAESD folder used for previews/decoding */
  SF_PARAM_COMPONENTS = 105,    /* int: bit mask of sf_network to build (default all); without
                                 * SF_NET_TEXT_ENCODER the folder's tokenizer may be absent */
  SF_PARAM_TOKENIZER_PATH = 106,/* string: a tokenizer folder (vocab.json + merges.txt) used
                                 * instead of the model's own, which may then be absent */
  SF_PARAM_WEIGHT_TYPE = 107,   /* int sf_weight_type: how convolution and linear weights are
                                 * held in memory (since 1.1) */
  SF_PARAM_LOW_MEMORY = 108,    /* int 0/1: one network resident at a time (since 1.1): each is
                                 * packed when a run needs it and freed when another one is
                                 * needed and no run uses it (the text encoder after encoding,
                                 * the UNet before the decoder is packed); costs the packing
                                 * time of every network per generation */
  SF_PARAM_PACK_PATH = 109,     /* string: a pack file (sf_pipeline_write_pack, `snapfusion pack`)
                                 * the weights come from (since 1.1): the networks are built from
                                 * the folder's configs (the folder needs no checkpoints) and the
                                 * file is mapped read-only and used in place: no copy, no packing,
                                 * so the weights are clean file-backed pages, which a phone does
                                 * not count against the app and the kernel may drop and read
                                 * back. The file must stay unchanged while the pipeline lives.
                                 * Without SF_PARAM_COMPONENTS the networks are the pack's (TAESD,
                                 * never packed, loads as usual). Refused: a pack of another model
                                 * (its configs differ: SF_ERR_BAD_MODEL), one whose weight type
                                 * differs from SF_PARAM_WEIGHT_TYPE when that is set
                                 * (SF_ERR_INVALID_ARGUMENT), one packed for a panel layout this
                                 * CPU cannot run, e.g. AVX-512 panels on an AVX2-only CPU or f16
                                 * panels without F16C (SF_ERR_UNSUPPORTED; the message names the
                                 * file's layout and this CPU's: pack again on this machine), a
                                 * malformed or truncated file (SF_ERR_BAD_MODEL), and the
                                 * combinations with SF_PARAM_RANDOM_WEIGHTS or
                                 * SF_PARAM_INSPECT_ONLY. Works with SF_PARAM_LOW_MEMORY (a
                                 * network's pages leave the resident set when it is freed).
                                 * Results are bit for bit those of the load that wrote the pack. */
  SF_PARAM_CONFIG_PATH = 110,   /* string (since 1.1): for a single-file checkpoint (the model path
                                 * is one .safetensors file in the original LDM/CompVis layout:
                                 * model.diffusion_model.*, first_stage_model.*,
                                 * cond_stage_model.transformer.*), a diffusers folder whose
                                 * configs, scheduler and tokenizer describe it (its weights are
                                 * ignored). Without it the architecture is inferred from the
                                 * tensors' shapes, with SD-1.5's values for what shapes cannot
                                 * tell (8 UNet heads, 12 text heads, SD-1.5's scheduler; no
                                 * tokenizer: give SF_PARAM_TOKENIZER_PATH). Given with a model
                                 * folder: SF_ERR_INVALID_ARGUMENT. */
  SF_PARAM_LORAS = 111,         /* string: LoRA files merged into the UNet's and the text encoder's
                                 * weights at load (since 1.1). One LoRA a line ('\n'): PATH, or
                                 * PATH<TAB>SCALE (a decimal number in the C locale, default 1; 0
                                 * gives exactly the base model, negative values subtract), e.g.
                                 * "a.safetensors\t0.75\nb.safetensors\t0.4". Formats: kohya/A1111
                                 * (lora_unet_<module with '_'>.lora_down.weight / .lora_up.weight /
                                 * .alpha, lora_te_<module>...; LoCon conv layers included) and
                                 * diffusers/PEFT (unet.<module>.lora_A.weight / .lora_B.weight,
                                 * text_encoder.<module>..., optional .alpha). For every module:
                                 * W' = W + sum over the LoRAs of scale * alpha/rank * up @ down
                                 * (no alpha: factor 1; conv kernels dW[o,i] = sum_r up[o,r] *
                                 * down[r,i]), computed in float64 and rounded to float32 once,
                                 * before the weights are packed in their SF_PARAM_WEIGHT_TYPE
                                 * (f16 / q8 quantise the merged weights; an fp16 checkpoint's
                                 * default F16 layers then round them), layer by layer while the
                                 * network is packed. Paths are in the file system (also for
                                 * sf_pipeline_load_files); the files stay mapped while the
                                 * pipeline lives. Errors (SF_ERR_BAD_MODEL unless said): a key of
                                 * no known format or kind (LoHa, LoKr, DoRA: SF_ERR_UNSUPPORTED),
                                 * a module that matches no layer of the model or whose shapes do
                                 * not fit it, up/down rank mismatch, a non-scalar alpha, a
                                 * malformed or truncated file, a bad line (SF_ERR_INVALID_ARGUMENT):
                                 * each message names the file and key. Modules of a network that
                                 * is not loaded (SF_PARAM_COMPONENTS) are left out (logged).
                                 * Works with SF_PARAM_LOW_MEMORY and SF_PARAM_INSPECT_ONLY (names
                                 * and shapes checked, nothing read); refused
                                 * (SF_ERR_INVALID_ARGUMENT) with SF_PARAM_PACK_PATH and
                                 * SF_PARAM_RANDOM_WEIGHTS. sf_pipeline_write_pack of a pipeline
                                 * loaded with LoRAs writes the merged weights. */
  SF_PARAM_UNET_GUIDANCE = 120, /* float: the guidance scale the building-block UNet calls
                                 * (sf_unet_predict_v2, sf_unet_predict) condition an
                                 * LCM-distilled UNet on (one with time_cond_proj_dim: the scale
                                 * enters as an embedding, not as classifier-free guidance);
                                 * default 8; ignored by other UNets. Generations use
                                 * SF_PARAM_GUIDANCE_SCALE instead (since 1.1) */
  SF_PARAM_GEMM_BACKEND = 130,  /* int: what computes convolutions and linear layers with f32
                                 * weights (since 1.1). 0 (default): the library's own kernels
                                 * on every CPU (SIMD where it has them, portable C elsewhere),
                                 * so a seed gives the same bits on x86 and AArch64; 1: XNNPACK
                                 * (its own rounding, different bits; f16 / q8 weights and packs
                                 * stay on the library's kernels). Other values are
                                 * SF_ERR_INVALID_ARGUMENT. */

  /* Generation (sf_generate / sf_job_start). */
  SF_PARAM_PROMPT = 200,        /* string */
  SF_PARAM_NEGATIVE_PROMPT = 201,/* string */
  SF_PARAM_WIDTH = 202,         /* int, pixels, a multiple of SF_INFO_SIZE_MULTIPLE (64 for
                                 * SD-1.x); default: the init image's, else the UNet's
                                 * sample_size times the decoder's factor */
  SF_PARAM_HEIGHT = 203,        /* int, likewise */
  SF_PARAM_STEPS = 204,         /* int >= 1 */
  SF_PARAM_GUIDANCE_SCALE = 205,/* float; <= 1 skips the unconditional pass */
  SF_PARAM_SEED = 206,          /* int (64-bit, taken as unsigned); SF_SEED_RANDOM draws one */
  SF_PARAM_SAMPLER = 207,       /* int sf_sampler */
  SF_PARAM_KARRAS_SIGMAS = 208, /* int 0/1 */
  SF_PARAM_CLIP_SKIP = 209,     /* int: 0/1 = last layer, 2 = one before, ... */
  SF_PARAM_BATCH_COUNT = 210,   /* int: sf_generate_batch makes this many images from seeds S,
                                 * S+1, ... (default 1); a job makes one image and refuses
                                 * other values */
  SF_PARAM_STRENGTH = 211,      /* float in [0,1] for img2img */
  SF_PARAM_PREDICTION_TYPE = 212,/* int sf_prediction: override the scheduler config */
  SF_PARAM_DECODER = 213,       /* int sf_decoder: which decoder makes the final image */
  SF_PARAM_ETA = 214,           /* float: DDIM eta (only 0 supported: others are
                                 * SF_ERR_UNSUPPORTED) */
  SF_PARAM_TIMESTEP_SPACING = 215,/* int sf_timestep_spacing: override the config */
  SF_PARAM_PROMPT_SYNTAX = 216  /* int sf_prompt_syntax (since 1.1): how the prompt and negative
                                 * prompt are read; default SF_PROMPT_SYNTAX_PLAIN */
} sf_param;

/* SF_PARAM_PROMPT_SYNTAX (since 1.1).
 * PLAIN: as diffusers: the text is the prompt, cut after 75 tokens (the exact embeddings of a
 *   diffusers pipeline).
 * A1111: stable-diffusion-webui's syntax: (word) weight x1.1, ((word)) x1.21, [word] /1.1,
 *   (word:1.3) x1.3, \( \) \[ \] \\ literal characters, BREAK (upper case) starts a new chunk;
 *   the prompt is encoded in chunks of 75 tokens (a chunk that fills up within 20 tokens after a
 *   comma continues after the comma in the next chunk) whose embeddings are concatenated (77
 *   tokens per chunk); each chunk's encoder output is multiplied by its tokens' weights and
 *   rescaled to its mean before weighting. Prompt and negative prompt of different chunk counts
 *   are padded with empty chunks (A1111's "pad prompt/negative prompt to be same length").
 *   A malformed weight ("(a:1.2.3)") is SF_ERR_INVALID_ARGUMENT. */
typedef enum sf_prompt_syntax {
  SF_PROMPT_SYNTAX_PLAIN = 0,
  SF_PROMPT_SYNTAX_A1111 = 1
} sf_prompt_syntax;

SF_API sf_status sf_params_create(sf_params **out_params);
SF_API void sf_params_destroy(sf_params *params);
/* Setting a key to a value of the wrong type is SF_ERR_INVALID_ARGUMENT. Strings are
 * copied. */
SF_API sf_status sf_params_set_int(sf_params *params, sf_param key, int64_t value);
SF_API sf_status sf_params_set_float(sf_params *params, sf_param key, double value);
SF_API sf_status sf_params_set_string(sf_params *params, sf_param key, const char *value);
/* SF_PARAM_SEED: draw a random seed (sf_job_seed and the image's parameters tell which). The
 * generator uses the seed's low 32 bits (as torch's CPU generator does), so 2^64-1, which this
 * value stands for, gives the same noise as seed 4294967295. */
#define SF_SEED_RANDOM (-1)

/* Removes a key (back to default). */
SF_API sf_status sf_params_unset(sf_params *params, sf_param key);
/* SF_ERR_NOT_FOUND (with a message naming the key) when the key is unset; SF_ERR_INVALID_ARGUMENT
 * when it holds another type. The string stays owned by params and is valid
 * until the key is set again or params is destroyed. */
SF_API sf_status sf_params_get_int(const sf_params *params, sf_param key, int64_t *out_value);
SF_API sf_status sf_params_get_float(const sf_params *params, sf_param key, double *out_value);
SF_API sf_status sf_params_get_string(const sf_params *params, sf_param key,
                                      const char **out_value);

/* ---------------------------------------------------------------------------------- */
/* Context: threads, logging, errors                                                   */
/* ---------------------------------------------------------------------------------- */

typedef struct sf_context sf_context;

typedef enum sf_log_level {
  SF_LOG_DEBUG = 0,
  SF_LOG_INFO = 1,
  SF_LOG_WARN = 2,
  SF_LOG_ERROR = 3
} sf_log_level;

/* Called on the thread that made the library call; message has no trailing newline and
 * is valid only during the call. */
typedef void (*sf_log_fn)(void *user_data, sf_log_level level, const char *message);

/* Creates a context with default options (one thread per core, logging off). */
SF_API sf_status sf_context_create(sf_context **out_ctx);
SF_API void sf_context_destroy(sf_context *ctx);
/* Sets SF_PARAM_THREADS or SF_PARAM_LOG_LEVEL. Changing the thread count while a network
 * call (or a load) of this context is running is SF_ERR_BAD_STATE. More threads than online CPUs are
 * allowed but logged as a warning: oversubscribed workers make every step much slower. */
SF_API sf_status sf_context_set_int(sf_context *ctx, sf_param key, int64_t value);
SF_API sf_status sf_context_get_int(const sf_context *ctx, sf_param key, int64_t *out_value);
/* callback may be NULL to stop logging. */
SF_API sf_status sf_context_set_log_callback(sf_context *ctx, sf_log_fn callback,
                                             void *user_data);
/* Message of the last failure of a call made with this context (or an object created
 * from it); "" if none. Owned by ctx, valid until its next failing call. */
SF_API const char *sf_context_last_error(const sf_context *ctx);

/* ---------------------------------------------------------------------------------- */
/* Pipelines: a loaded diffusers model folder                                          */
/* ---------------------------------------------------------------------------------- */

typedef struct sf_pipeline sf_pipeline;

/* The networks of a pipeline, as bits (SF_PARAM_COMPONENTS) and as selectors. */
typedef enum sf_network {
  SF_NET_TEXT_ENCODER = 1,
  SF_NET_UNET = 2,
  SF_NET_VAE_DECODER = 4,
  SF_NET_VAE_ENCODER = 8,
  SF_NET_TAESD_DECODER = 16,
  SF_NET_TAESD_ENCODER = 32
} sf_network;

/* SF_PARAM_WEIGHT_TYPE. f16 halves the weights' memory: for an fp16 checkpoint (e.g. loaded
 * with SF_PARAM_VARIANT "fp16") it is exact and the default, so results are bit for bit those of
 * f32 weights with the same values; for an f32 checkpoint it rounds every weight to nearest even.
 * q8 quarters it: int8 per output channel (scale = max|w| / 127, round half to even, the scale
 * applied once after accumulation), with the layers next to the latents and the pixels and the
 * time embedding kept in f16; its error is measured in the README. Activations are always f32.
 * Norms and embeddings stay f32 (they are small). */
typedef enum sf_weight_type {
  SF_WEIGHT_DEFAULT = 0, /* as the checkpoint stores them: f16 for F16 tensors, else f32 */
  SF_WEIGHT_F32 = 1,
  SF_WEIGHT_F16 = 2,
  SF_WEIGHT_Q8 = 3
} sf_weight_type;

/* Loads a diffusers folder (model_index.json, per-component config.json and
 * *.safetensors, tokenizer vocab.json + merges.txt, scheduler config). options may be
 * NULL; it is read during the call only (SF_PARAM_VARIANT, SF_PARAM_RANDOM_WEIGHTS,
 * SF_PARAM_RANDOM_SEED, SF_PARAM_INSPECT_ONLY, SF_PARAM_TAESD_PATH, SF_PARAM_COMPONENTS,
 * SF_PARAM_TOKENIZER_PATH, SF_PARAM_WEIGHT_TYPE, SF_PARAM_LOW_MEMORY, SF_PARAM_PACK_PATH,
 * SF_PARAM_LORAS). With
 * SF_PARAM_RANDOM_WEIGHTS or SF_PARAM_PACK_PATH the folder may hold configs only
 * (a tokenizer is data, not weights: a config-only folder without tokenizer/ needs
 * SF_PARAM_TOKENIZER_PATH to accept prompts). model_dir may also be one single-file checkpoint
 * (since 1.1): a .safetensors in the original LDM/CompVis layout (model.diffusion_model.*,
 * first_stage_model.*, cond_stage_model.transformer.*; F32 or F16, some components only, the
 * UNet's EMA copy model_ema.* taken when present and logged at INFO), configs from
 * SF_PARAM_CONFIG_PATH or inferred from its shapes; a tensor with no place in the layout, missing
 * or left over is SF_ERR_BAD_MODEL naming it. PyTorch pickles (.ckpt, .pt, .pth, .bin) are
 * refused (SF_ERR_UNSUPPORTED), never unpickled. The pipeline keeps a
 * pointer to ctx, which must outlive it. */
SF_API sf_status sf_pipeline_load(sf_context *ctx, const char *model_dir, const sf_params *options,
                                  sf_pipeline **out_pipeline);
SF_API void sf_pipeline_destroy(sf_pipeline *pipeline);

/* Writes the weights of a loaded pipeline to a pack file at path (replaced if it exists; written
 * to path + ".partial" first, so a failure leaves no file at path), for loads with
 * SF_PARAM_PACK_PATH: every parameter of its text encoder, UNet, VAE decoder and encoder (TAESD is
 * not packed), the convolution and linear weights as the GEMM panels they run from, in the
 * pipeline's weight type and this CPU's panel layout. The file has a versioned header with a
 * checksum, naming the library version, panel layout, weight type and a hash of each network's
 * config, and an index of 64-byte aligned blobs (README "Pack files"). SF_ERR_BAD_STATE for
 * pipelines loaded with SF_PARAM_INSPECT_ONLY or SF_PARAM_LOW_MEMORY (load without them to pack),
 * SF_ERR_UNSUPPORTED when f32 layers run on XNNPACK (a CPU without AVX2+FMA: pack f16 or q8
 * weights), SF_ERR_IO. May run while runs of the pipeline are in flight. Since 1.1. */
SF_API sf_status sf_pipeline_write_pack(const sf_pipeline *pipeline, const char *path);

/* A set of model files held in memory: a diffusers folder's files by their relative paths
 * ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
 * "tokenizer/vocab.json", ...), for apps whose weights are not in the file system. A path
 * prefix ("unet/") is a folder when some file lies under it. Each set must be used by one
 * thread at a time. Since 1.1. */
typedef struct sf_files sf_files;
SF_API sf_status sf_files_create(sf_files **out_files);
/* Destroying the set while pipelines loaded from it are alive is allowed only for copied files
 * (see sf_files_add). NULL is a no-op. */
SF_API void sf_files_destroy(sf_files *files);
/* Adds (or replaces) the file at path (relative, '/'-separated, no "..", no leading '/') with
 * size bytes at data. copy 1: the bytes are copied; copy 0: borrowed: they must stay valid and
 * unchanged until the set and every pipeline loaded from it are destroyed (zero-copy for large
 * safetensors files, e.g. a memory-mapped asset). The library never writes them.
 * SF_ERR_INVALID_ARGUMENT for a bad path (also "", "." or empty parts, a backslash), NULL data
 * with size > 0, or a path that is a folder of the set's files or lies under one of its files. */
SF_API sf_status sf_files_add(sf_files *files, const char *path, const void *data, size_t size, int copy);
/* sf_pipeline_load from the set instead of a folder; the same options and rules (variant,
 * components, tokenizer path, random weights, inspect only ...). The pipeline reads the set's
 * files during the load and keeps references to the bytes it needs; it does not keep files.
 * SF_PARAM_TOKENIZER_PATH, SF_PARAM_TAESD_PATH and SF_PARAM_CONFIG_PATH stay paths in the file
 * system. A set holding one file, a .safetensors, is loaded as a single-file checkpoint. Messages
 * name the set's files "memory:PATH" (e.g. "memory:unet/config.json is missing"). */
SF_API sf_status sf_pipeline_load_files(sf_context *ctx, const sf_files *files, const sf_params *options,
                                        sf_pipeline **out_pipeline);

typedef enum sf_format { SF_FORMAT_TEXT = 0, SF_FORMAT_JSON = 1 } sf_format;

/* A description of the loaded model (components, classes, key config values, tensor
 * and parameter counts, dtypes) as human-readable text or JSON. Writes at most capacity
 * bytes including the NUL (buffer may be NULL when capacity is 0); *out_needed (may be
 * NULL) receives the full size including the NUL, so callers can size and call again. */
SF_API sf_status sf_pipeline_describe(const sf_pipeline *pipeline, sf_format format, char *buffer,
                                      size_t capacity, size_t *out_needed);

typedef enum sf_info {
  SF_INFO_NETWORKS = 1,        /* int: sf_network bits that are built and usable */
  SF_INFO_TEXT_TOKENS = 2,     /* int: tokens per prompt (77) */
  SF_INFO_TEXT_HIDDEN = 3,     /* int: text embedding width (768 for SD-1.x): the text
                                * encoder's, else the width the UNet's cross-attention takes */
  SF_INFO_LATENT_CHANNELS = 4, /* int */
  SF_INFO_DEFAULT_WIDTH = 5,   /* int: pixels */
  SF_INFO_DEFAULT_HEIGHT = 6,  /* int: pixels */
  SF_INFO_VAE_SCALE = 7,       /* float: latent scaling factor (0.18215 for SD-1.x) */
  SF_INFO_ARENA_BYTES = 8,     /* int: activation memory held by the pipeline's run states:
                                * one workspace per run in flight (shared by its networks,
                                * sized for the largest) plus one kept for the next run */
  SF_INFO_PARAMETERS = 9,      /* int: parameters of the built networks */
  SF_INFO_LAST_MACS = 10,      /* float: multiply-accumulates of the last network call
                                  (conv + linear + attention matmuls) */
  SF_INFO_LAST_ATTENTION_MACS = 11, /* float: the attention part of SF_INFO_LAST_MACS */
  SF_INFO_SIZE_MULTIPLE = 12,  /* int: image sides must be multiples of this: the decoder's
                                * factor times 2^(the UNet's down-samplings); 64 for SD-1.x */
  SF_INFO_ACTIVE_RUNS = 13,    /* int: runs in flight now (jobs alive, calls in progress) */
  SF_INFO_SCALE_FACTOR = 14,   /* int: image pixels per latent pixel of the pipeline's decoder
                                * (the VAE's, else TAESD's; 8 for SD-1.x) */
  SF_INFO_WEIGHT_BYTES = 15,   /* int: bytes the resident networks' weights take (packed
                                * convolution/linear weights in their sf_weight_type, norms,
                                * embeddings). With SF_PARAM_LOW_MEMORY only the networks
                                * resident now count (0 right after the load); with
                                * SF_PARAM_INSPECT_ONLY what a load would pack. */
  SF_INFO_WEIGHT_TYPE = 16     /* int sf_weight_type the UNet's layers are held in (F32, F16 or
                                * Q8; an fp16 checkpoint's default is F16). Since 1.1. */
} sf_info;

SF_API sf_status sf_pipeline_get_int(const sf_pipeline *pipeline, sf_info key, int64_t *out_value);
SF_API sf_status sf_pipeline_get_float(const sf_pipeline *pipeline, sf_info key, double *out_value);

/* Memory a generation will take, in bytes (sf_pipeline_estimate_memory). Since 1.1. */
typedef enum sf_memory {
  SF_MEMORY_PEAK = 0,          /* expected peak resident set of the process from the load to the
                                * end of the generation (the library's share plus a fixed base
                                * for code and libraries) */
  SF_MEMORY_WEIGHTS = 1,       /* packed weights resident at that peak */
  SF_MEMORY_WORKSPACE = 2,     /* activation workspace resident at that peak */
  SF_MEMORY_OTHER = 3,         /* the rest of the peak: weights being packed (staging, checkpoint
                                * pages), the run's buffers, the base */
  SF_MEMORY_WEIGHTS_TOTAL = 4, /* packed weights of all the pipeline's networks */
  SF_MEMORY_WORKSPACE_RUN = 5  /* the largest workspace the generation plans */
} sf_memory;

/* What a generation with params (the sf_generate parameters: size, guidance, init image,
 * decoder, batch count; the prompt may be absent) will need on this pipeline, as loaded (weight
 * type, low-memory mode) and on the context's thread count: *out_bytes receives the figure
 * `what`. Works on a pipeline loaded with SF_PARAM_INSPECT_ONLY, which reads no weight: load that
 * way first to know, before anything is packed, whether a model fits (e.g. against iOS's
 * os_proc_available_memory()). The estimate comes from the networks' packed sizes and planned
 * workspaces, not from a measurement; the README's Memory section compares it with measured
 * peaks. Since 1.1. */
SF_API sf_status sf_pipeline_estimate_memory(const sf_pipeline *pipeline, const sf_params *params, sf_memory what,
                                             int64_t *out_bytes);

/* ---------------------------------------------------------------------------------- */
/* Building blocks, for apps that cache embeddings or drive their own loops            */
/* ---------------------------------------------------------------------------------- */

/* CLIP tokenisation exactly as SD-1.x pipelines do it: BOS, up to 75 tokens, EOS, padded
 * with the tokenizer's pad id to SF_INFO_TEXT_TOKENS ids. capacity must be at least that.
 * *out_untruncated (may be NULL) receives the prompt's token count before truncation, so
 * apps can warn that a prompt was cut. Invalid UTF-8 bytes are read as U+FFFD. */
SF_API sf_status sf_tokenize(sf_pipeline *pipeline, const char *prompt, int32_t *ids, size_t capacity,
                             size_t *out_untruncated);

/* Text embeddings [batch, tokens, hidden] of token ids [batch, tokens]. clip_skip 0 or 1
 * uses the last layer; 2 the one before, as A1111's "clip skip". */
SF_API sf_status sf_encode_ids(sf_pipeline *pipeline, const int32_t *ids, size_t batch, size_t tokens,
                               int clip_skip, float *out, size_t out_count);
/* Tokenise + encode one prompt: out holds tokens*hidden floats. */
SF_API sf_status sf_encode_prompt(sf_pipeline *pipeline, const char *prompt, int clip_skip, float *out,
                                  size_t out_count);

/* The vocabulary entry of a token id, in the tokenizer's byte-level form ("photo</w>",
 * "<|startoftext|>"), NUL-terminated into buffer (capacity bytes; buffer may be NULL when
 * capacity is 0); *out_needed (may be NULL) receives its size including the NUL.
 * SF_ERR_NOT_FOUND for an id outside the vocabulary. Since 1.1. */
SF_API sf_status sf_token_text(sf_pipeline *pipeline, int32_t id, char *buffer, size_t capacity,
                               size_t *out_needed);

/* One UNet evaluation: latents NCHW [batch, C, height, width] (latent pixels, multiples of
 * 2^(the UNet's down-samplings)), one timestep per batch item, text embeddings [batch,
 * tokens, hidden]; out NCHW [batch, out_channels, height, width] (noise, velocity or sample,
 * as the model was trained; out_channels = C for SD-1.x). latents_count must be
 * batch*C*height*width, timesteps_count batch, text_count batch*tokens*hidden; out_capacity
 * at least batch*out_channels*height*width. Since 1.1. */
SF_API sf_status sf_unet_predict_v2(sf_pipeline *pipeline, const float *latents, size_t latents_count,
                                    size_t batch, size_t height, size_t width, const float *timesteps,
                                    size_t timesteps_count, const float *text_embeddings, size_t text_count,
                                    size_t tokens, float *out, size_t out_capacity);

/* Flags of sf_decode_latents_v2 / sf_encode_image_v2. */
#define SF_LATENTS_UNSCALED 1u /* latents are already divided by the decoder's scaling factor
                                  (decode), or are returned without multiplying (encode); for
                                  TAESD, whose factor is 1.0, this changes nothing */
#define SF_IMAGE_RAW 2u        /* images in the network's own range: TAESD's [0, 1] instead of
                                  [-1, 1] (decode: output, encode: input); the VAE's own range
                                  is [-1, 1], so for it this changes nothing */

/* Latents NCHW [batch, C, height, width] -> image NCHW [batch, 3, f*height, f*width] in
 * [-1, 1] (not clamped), f = the decoder's factor (8 for SD-1.x). decoder:
 * SF_NET_VAE_DECODER or SF_NET_TAESD_DECODER. Latents are in pipeline space (multiplied by
 * the scaling factor) unless SF_LATENTS_UNSCALED. latents_count must be batch*C*height*width;
 * image_capacity at least batch*3*(f*height)*(f*width). Since 1.1. */
SF_API sf_status sf_decode_latents_v2(sf_pipeline *pipeline, sf_network decoder, const float *latents,
                                      size_t latents_count, size_t batch, size_t height, size_t width,
                                      uint32_t flags, float *image, size_t image_capacity);
/* Image NCHW [batch, 3, height, width] in [-1, 1] (sides multiples of the encoder's factor f)
 * -> latent mean (and log-variance, may be NULL with capacity 0; TAESD has none) NCHW
 * [batch, C, height/f, width/f], scaled to pipeline space unless SF_LATENTS_UNSCALED.
 * encoder: SF_NET_VAE_ENCODER or SF_NET_TAESD_ENCODER. image_count must be
 * batch*3*height*width; mean_capacity (and logvar_capacity) at least batch*C*(height/f)*
 * (width/f). Since 1.1. */
SF_API sf_status sf_encode_image_v2(sf_pipeline *pipeline, sf_network encoder, const float *image,
                                    size_t image_count, size_t batch, size_t height, size_t width, uint32_t flags,
                                    float *mean, size_t mean_capacity, float *logvar, size_t logvar_capacity);

/* Version 1 of the three calls above: the same, without buffer sizes (a wrong shape from a
 * binding overruns the caller's buffers). Kept working; use the _v2 functions. */
SF_API SF_DEPRECATED("use sf_unet_predict_v2") sf_status sf_unet_predict(
    sf_pipeline *pipeline, const float *latents, size_t batch, size_t height, size_t width, const float *timesteps,
    const float *text_embeddings, size_t tokens, float *out);
SF_API SF_DEPRECATED("use sf_decode_latents_v2") sf_status sf_decode_latents(
    sf_pipeline *pipeline, sf_network decoder, const float *latents, size_t batch, size_t height, size_t width,
    uint32_t flags, float *image);
SF_API SF_DEPRECATED("use sf_encode_image_v2") sf_status sf_encode_image(
    sf_pipeline *pipeline, sf_network encoder, const float *image, size_t batch, size_t height, size_t width,
    uint32_t flags, float *mean, float *logvar);

/* ---------------------------------------------------------------------------------- */
/* Random numbers: PyTorch's CPU generator, bit for bit                                */
/* ---------------------------------------------------------------------------------- */

/* seed S gives torch.randn(n, generator=torch.Generator().manual_seed(S)) exactly: MT19937
 * on the low 32 bits of the seed and torch's normal sampling (whose results differ for
 * draws under and over 16 values). Two kernels exist in torch; the default is the one
 * x86 builds of torch use (AVX2), the other is its portable scalar kernel. */
typedef enum sf_rng_kind {
  SF_RNG_TORCH_CPU = 0,
  SF_RNG_TORCH_CPU_SCALAR = 1
} sf_rng_kind;

typedef struct sf_rng sf_rng;

SF_API sf_status sf_rng_create(sf_rng_kind kind, uint64_t seed, sf_rng **out_rng);
SF_API void sf_rng_destroy(sf_rng *rng);
/* Successive calls continue the stream, like successive torch calls on one generator. */
SF_API sf_status sf_rng_randn(sf_rng *rng, float *out, size_t count);
SF_API sf_status sf_rng_randn_f64(sf_rng *rng, double *out, size_t count);
SF_API sf_status sf_rng_rand(sf_rng *rng, float *out, size_t count);

/* ---------------------------------------------------------------------------------- */
/* Text-to-image generation                                                            */
/* ---------------------------------------------------------------------------------- */

typedef enum sf_sampler {
  SF_SAMPLER_DEFAULT = 0,   /* the folder's scheduler (DDIM when its class is unknown; SD-1.5's
                             * PNDM when there is no scheduler config) */
  SF_SAMPLER_DDIM = 1,      /* eta 0 */
  SF_SAMPLER_PNDM = 2,      /* PLMS (skip_prk_steps), what SD-1.5 folders ship */
  SF_SAMPLER_EULER = 3,
  SF_SAMPLER_EULER_A = 4,   /* Euler ancestral */
  SF_SAMPLER_DPMPP_2M = 5,  /* DPM-Solver++ 2M; Karras sigmas with SF_PARAM_KARRAS_SIGMAS */
  SF_SAMPLER_LCM = 6
} sf_sampler;

typedef enum sf_prediction {
  SF_PREDICTION_DEFAULT = 0, /* the scheduler config's */
  SF_PREDICTION_EPSILON = 1,
  SF_PREDICTION_V = 2,
  SF_PREDICTION_SAMPLE = 3
} sf_prediction;

typedef enum sf_timestep_spacing {
  SF_SPACING_DEFAULT = 0,
  SF_SPACING_LEADING = 1,
  SF_SPACING_TRAILING = 2,
  SF_SPACING_LINSPACE = 3
} sf_timestep_spacing;

/* "ddim", "pndm", "euler", "euler_a", "dpm++2m", "lcm" <-> sf_sampler; NULL / DEFAULT
 * when unknown. */
SF_API const char *sf_sampler_name(sf_sampler sampler);
SF_API sf_sampler sf_sampler_from_name(const char *name);

/* Array-valued parameters, copied into params. */
typedef enum sf_param_array {
  SF_PARAM_LATENTS = 300,          /* float [batch?, C, H/8, W/8]: initial noise instead of the seed's
                                      (before multiplication by the scheduler's init sigma) */
  SF_PARAM_PROMPT_EMBEDS = 301,    /* float [77, hidden]: instead of SF_PARAM_PROMPT */
  SF_PARAM_NEGATIVE_EMBEDS = 302   /* float [77, hidden]: instead of SF_PARAM_NEGATIVE_PROMPT */
} sf_param_array;

SF_API sf_status sf_params_set_floats(sf_params *params, sf_param_array key, const float *values,
                                      size_t count);
/* An RGB8 image (rows of width*3 bytes, row pitch `stride` bytes) for img2img. */
SF_API sf_status sf_params_set_init_image(sf_params *params, const uint8_t *rgb, uint32_t width,
                                          uint32_t height, size_t stride);

/* ---- images ---- */

typedef struct sf_image sf_image;

SF_API uint32_t sf_image_width(const sf_image *image);
SF_API uint32_t sf_image_height(const sf_image *image);
/* Bytes between rows (>= 3 * width). */
SF_API size_t sf_image_stride(const sf_image *image);
/* Packed RGB8, top row first; owned by the image. */
SF_API const uint8_t *sf_image_pixels(const sf_image *image);
/* The generation parameters in the "parameters" text form other SD tools read
 * ("prompt\nNegative prompt: ...\nSteps: 8, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size:
 * 512x512, Model: ..."); "" for images not made by a generation. Owned by the image. */
SF_API const char *sf_image_parameters(const sf_image *image);
SF_API void sf_image_destroy(sf_image *image);
/* Copies the pixels into a caller buffer of `capacity` bytes with row pitch `stride`;
 * *out_needed (may be NULL) receives stride*height. */
SF_API sf_status sf_image_copy(const sf_image *image, uint8_t *buffer, size_t capacity, size_t stride,
                               size_t *out_needed);
/* Writes a PNG with the parameters (if any) as a "parameters" tEXt chunk. */
SF_API sf_status sf_image_write_png(const sf_image *image, const char *path);
/* Reads an 8-bit gray, RGB or RGBA PNG (for img2img; alpha is dropped). Its "parameters"
 * text chunk, if any, becomes sf_image_parameters. */
SF_API sf_status sf_image_read_png(const char *path, sf_image **out_image);

/* ---- jobs: the step-wise API ---- */

typedef struct sf_job sf_job;

/* Starts a generation: encodes the prompts, draws the initial latents (or takes
 * SF_PARAM_LATENTS), prepares the scheduler. params is read during the call only. The
 * job borrows the pipeline, which must outlive it; several jobs (from different threads)
 * may run on one pipeline at once (see Threading). Sizes are checked here: width and height
 * must be multiples of SF_INFO_SIZE_MULTIPLE. */
SF_API sf_status sf_job_start(sf_pipeline *pipeline, const sf_params *params, sf_job **out_job);
/* Runs one denoising step. Returns SF_OK, SF_ERR_CANCELLED after sf_job_cancel or
 * sf_pipeline_cancel (the job can then only be destroyed), or SF_ERR_BAD_STATE when all
 * steps are done. */
SF_API sf_status sf_job_step(sf_job *job);
SF_API int sf_job_steps_done(const sf_job *job);
SF_API int sf_job_steps_total(const sf_job *job);
/* Floats in the job's latents (C * H/8 * W/8), to size sf_job_latents' buffer; 0 for NULL. */
SF_API size_t sf_job_latent_count(const sf_job *job);
/* Current latents NCHW [1, C, H/8, W/8]; count must be at least that. */
SF_API sf_status sf_job_latents(const sf_job *job, float *out, size_t count);
/* A preview of the current latents: TAESD when the pipeline has one, else a cheap linear
 * latent-to-RGB projection (1/8 size). */
SF_API sf_status sf_job_preview(sf_job *job, sf_image **out_image);
/* Runs the remaining steps and decodes the final image. */
SF_API sf_status sf_job_finish(sf_job *job, sf_image **out_image);
/* Thread-safe: this job's running or next step returns SF_ERR_CANCELLED promptly. Affects
 * only this job. */
SF_API void sf_job_cancel(sf_job *job);
SF_API void sf_job_destroy(sf_job *job);

/* The seed the job draws its noise from: SF_PARAM_SEED, or the one drawn for SF_SEED_RANDOM.
 * 0 for NULL. Since 1.1. */
SF_API uint64_t sf_job_seed(const sf_job *job);

typedef enum sf_layout {
  SF_LAYOUT_NCHW = 0, /* [3, H, W]: diffusers' output_type "pt" */
  SF_LAYOUT_NHWC = 1  /* [H, W, 3]: diffusers' output_type "np" */
} sf_layout;
/* Floats in the job's final image (3*H*W), to size sf_job_image_f32's buffer; 0 for NULL. */
SF_API size_t sf_job_image_count(const sf_job *job);
/* The final image as float32 in [0, 1] before 8-bit rounding ((x/2 + 0.5) clamped, as
 * diffusers' postprocess), after sf_job_finish (SF_ERR_BAD_STATE before). Since 1.1. */
SF_API sf_status sf_job_image_f32(const sf_job *job, sf_layout layout, float *out, size_t capacity);

/* Called after every step; return non-zero to stop the run (SF_ERR_CANCELLED). */
typedef int (*sf_progress_fn)(void *user_data, int step, int total_steps);

/* One-shot generation of one image: sf_job_start, every step, decode. progress may be NULL. */
SF_API sf_status sf_generate(sf_pipeline *pipeline, const sf_params *params, sf_progress_fn progress,
                             void *user_data, sf_image **out_image);
/* SF_PARAM_BATCH_COUNT images from consecutive seeds S, S+1, ... (S = SF_PARAM_SEED, or one
 * drawn for SF_SEED_RANDOM), one after another, into out_images[0..count) in seed order;
 * capacity must be at least the count. progress sees the steps of the whole batch. On
 * failure (a cancel included) *out_count says how many images were finished and returned;
 * the caller destroys them either way. Since 1.1. */
SF_API sf_status sf_generate_batch(sf_pipeline *pipeline, const sf_params *params, sf_progress_fn progress,
                                   void *user_data, sf_image **out_images, size_t capacity, size_t *out_count);
/* Thread-safe: cancels every run of the pipeline in flight now (jobs alive, generate and
 * building-block calls in progress); runs started later are not affected. */
SF_API void sf_pipeline_cancel(sf_pipeline *pipeline);

/* ---------------------------------------------------------------------------------- */
/* Schedules: the samplers on their own, for apps that drive their own loops           */
/* ---------------------------------------------------------------------------------- */

/* A sampler's state, with diffusers' arithmetic (timesteps, sigmas, step()). */
typedef struct sf_schedule sf_schedule;

/* config_json: the text of a diffusers scheduler_config.json (NULL: SD-1.5's, the same default
 * a generation uses for a folder without scheduler). Keys the file lacks take the sampler
 * class's own defaults, as diffusers' from_config does. overrides may be NULL
 * (SF_PARAM_PREDICTION_TYPE, SF_PARAM_TIMESTEP_SPACING, SF_PARAM_KARRAS_SIGMAS — an explicit 0
 * switches Karras sigmas off — and SF_PARAM_ETA), read exactly as a generation reads them.
 * SF_SAMPLER_DEFAULT takes the class named in the file (DDIM when unknown). */
SF_API sf_status sf_schedule_create(sf_sampler sampler, const char *config_json, const sf_params *overrides,
                                    sf_schedule **out_schedule);
SF_API void sf_schedule_destroy(sf_schedule *schedule);
/* Prepares `steps` steps for latents of `latent_count` floats. */
SF_API sf_status sf_schedule_set_steps(sf_schedule *schedule, int steps, size_t latent_count);
/* Model evaluations of the prepared run (PLMS evaluates once more than its steps). */
SF_API int sf_schedule_evaluations(const sf_schedule *schedule);
/* The timestep the model sees at evaluation i (fractional for Euler-type samplers). */
SF_API double sf_schedule_timestep(const sf_schedule *schedule, int i);
/* Sigmas including the trailing 0, for samplers that have them; *out_count = 0 else.
 * out NULL with capacity 0 is a size query (*out_count set, SF_OK); too small a buffer is
 * SF_ERR_INVALID_ARGUMENT with *out_count set. */
SF_API sf_status sf_schedule_sigmas(const sf_schedule *schedule, float *out, size_t capacity,
                                    size_t *out_count);
SF_API double sf_schedule_init_noise_sigma(const sf_schedule *schedule);
/* out = the model input for evaluation i (x scaled by the sampler); out may equal x. */
SF_API sf_status sf_schedule_scale_input(const sf_schedule *schedule, int i, const float *x, float *out,
                                         size_t count);
/* 1 if step i consumes a noise draw of latent_count values (ancestral samplers). */
SF_API int sf_schedule_step_needs_noise(const sf_schedule *schedule, int i);
/* sample <- the sampler's update for evaluation i given the model output; noise may be
 * NULL unless sf_schedule_step_needs_noise. Steps run in order: after
 * sf_schedule_set_steps the first step may be any i (img2img starts late), each later one
 * must be i+1 (SF_ERR_BAD_STATE otherwise: multistep samplers keep history).
 * sf_schedule_timestep and sf_schedule_init_noise_sigma return NaN before set_steps. */
SF_API sf_status sf_schedule_step(sf_schedule *schedule, int i, const float *model_output, float *sample,
                                  size_t count, const float *noise);

/* img2img from the building blocks (since 1.1): after set_steps, the evaluation index the
 * loop starts at for strength in [0, 1] (StableDiffusionImg2ImgPipeline.get_timesteps; it
 * also fixes where add_noise looks its sigma up), or -1 with a message when strength leaves no
 * step. The first sf_schedule_step is then i = that index. */
SF_API int sf_schedule_begin_index(sf_schedule *schedule, double strength);
/* out = the scheduler's add_noise(original, noise, timestep of evaluation i), for count
 * values (out may alias original). */
SF_API sf_status sf_schedule_add_noise(const sf_schedule *schedule, int i, const float *original,
                                       const float *noise, float *out, size_t count);

/* The training schedule's tables (num_train_timesteps entries, float32 as torch holds them).
 * out NULL with capacity 0 is a size query. Since 1.1. */
typedef enum sf_schedule_table {
  SF_TABLE_BETAS = 1,
  SF_TABLE_ALPHAS_CUMPROD = 2
} sf_schedule_table;
SF_API sf_status sf_schedule_get_table(const sf_schedule *schedule, sf_schedule_table table, float *out,
                                       size_t capacity, size_t *out_count);
/* final_alpha_cumprod (1 with set_alpha_to_one, else alphas_cumprod[0]); NaN for NULL. */
SF_API double sf_schedule_final_alpha_cumprod(const sf_schedule *schedule);

#ifdef __cplusplus
}
#endif

#endif /* SNAPFUSION_H */
