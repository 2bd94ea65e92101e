// Kotlin/JVM bindings for libsnapfusion over JNA (no generated code, no JNI).
//
//   Pipeline.load("models/tiny-sd").use { pipe ->      // threads: one per core unless threads = N
//       pipe.txt2img(GenerationOptions("a photo of a cat", steps = 8, seed = 1)).use { it.save("cat.png") }
//   }
//
// The library is found through -Dsnapfusion.library=PATH, $SNAPFUSION_LIBRARY, or JNA's
// search path (jna.library.path, the system loader) under the name "snapfusion"; its ABI
// version is checked on first use. Native objects are freed by close() (AutoCloseable) or,
// failing that, by a Cleaner once unreachable; a child (a pipeline of a context, a job of a
// pipeline) keeps its parent's native object alive, so no order of closing is unsafe.
package snapfusion

import com.sun.jna.Callback
import com.sun.jna.IntegerType
import com.sun.jna.Library
import com.sun.jna.Memory
import com.sun.jna.Native
import com.sun.jna.Pointer
import com.sun.jna.ptr.ByReference
import com.sun.jna.ptr.DoubleByReference
import com.sun.jna.ptr.LongByReference
import com.sun.jna.ptr.PointerByReference
import java.lang.ref.Cleaner
import java.nio.ByteBuffer
import java.util.concurrent.atomic.AtomicInteger

const val ABI_VERSION = 1

/** SF_SEED_RANDOM: GenerationOptions(seed = SEED_RANDOM) draws a seed; Job.seed and Image.seed tell which. */
const val SEED_RANDOM = -1L

/** size_t. */
class SizeT @JvmOverloads constructor(value: Long = 0) : IntegerType(Native.SIZE_T_SIZE, value, true) {
    override fun toByte(): Byte = toInt().toByte()
    override fun toChar(): Char = toInt().toChar()
    override fun toShort(): Short = toInt().toShort()
}

/** AutoCloseable.use: Kotlin 1.3's base stdlib (Debian's kotlinc) has it for Closeable only. */
inline fun <T : AutoCloseable, R> T.use(block: (T) -> R): R {
    var failed = false
    try {
        return block(this)
    } catch (t: Throwable) {
        failed = true
        try {
            close()
        } catch (suppressed: Throwable) {
            t.addSuppressed(suppressed)
        }
        throw t
    } finally {
        if (!failed) close()
    }
}

/** size_t *. */
class SizeTByReference : ByReference(Native.SIZE_T_SIZE) {
    val value: Long get() = if (Native.SIZE_T_SIZE == 8) pointer.getLong(0) else pointer.getInt(0).toLong() and 0xffffffffL
}

/** The C API of snapfusion.h, one declaration per function. */
@Suppress("FunctionName")
interface SfLib : Library {
    interface LogFn : Callback { fun invoke(user: Pointer?, level: Int, message: String?) }
    interface ProgressFn : Callback { fun invoke(user: Pointer?, step: Int, total: Int): Int }

    fun sf_version(): String
    fun sf_version_number(): Int
    fun sf_abi_version(): Int
    fun sf_status_string(status: Int): String
    fun sf_last_error(): String

    fun sf_params_create(out: PointerByReference): Int
    fun sf_params_destroy(p: Pointer?)
    fun sf_params_set_int(p: Pointer, key: Int, value: Long): Int
    fun sf_params_set_float(p: Pointer, key: Int, value: Double): Int
    fun sf_params_set_string(p: Pointer, key: Int, value: String?): Int
    fun sf_params_unset(p: Pointer, key: Int): Int
    fun sf_params_get_int(p: Pointer, key: Int, out: LongByReference): Int
    fun sf_params_get_float(p: Pointer, key: Int, out: DoubleByReference): Int
    fun sf_params_get_string(p: Pointer, key: Int, out: PointerByReference): Int

    fun sf_context_create(out: PointerByReference): Int
    fun sf_context_destroy(ctx: Pointer?)
    fun sf_context_set_int(ctx: Pointer, key: Int, value: Long): Int
    fun sf_context_get_int(ctx: Pointer, key: Int, out: LongByReference): Int
    fun sf_context_set_log_callback(ctx: Pointer, callback: LogFn?, user: Pointer?): Int
    fun sf_context_last_error(ctx: Pointer?): String

    fun sf_pipeline_load(ctx: Pointer, dir: String, options: Pointer?, out: PointerByReference): Int
    fun sf_pipeline_destroy(p: Pointer?)
    fun sf_files_create(out: PointerByReference): Int
    fun sf_files_destroy(files: Pointer?)
    /** data: the bytes' address (a Memory for a copy, or a direct ByteBuffer's address); NULL with size 0 is an empty file. */
    fun sf_files_add(files: Pointer, path: String, data: Pointer?, size: SizeT, copy: Int): Int
    fun sf_pipeline_load_files(ctx: Pointer, files: Pointer, options: Pointer?, out: PointerByReference): Int
    fun sf_pipeline_write_pack(p: Pointer, path: String): Int
    fun sf_pipeline_describe(p: Pointer, format: Int, buffer: ByteArray?, capacity: SizeT, needed: SizeTByReference?): Int
    fun sf_pipeline_get_int(p: Pointer, key: Int, out: LongByReference): Int
    fun sf_pipeline_get_float(p: Pointer, key: Int, out: DoubleByReference): Int
    fun sf_pipeline_estimate_memory(p: Pointer, params: Pointer?, what: Int, out: LongByReference): Int

    fun sf_tokenize(p: Pointer, prompt: String, ids: IntArray, capacity: SizeT, untruncated: SizeTByReference?): Int
    fun sf_encode_ids(p: Pointer, ids: IntArray, batch: SizeT, tokens: SizeT, clipSkip: Int, out: FloatArray, count: SizeT): Int
    fun sf_encode_prompt(p: Pointer, prompt: String, clipSkip: Int, out: FloatArray, count: SizeT): Int
    fun sf_token_text(p: Pointer, id: Int, buffer: ByteArray?, capacity: SizeT, needed: SizeTByReference?): Int
    fun sf_unet_predict_v2(p: Pointer, latents: FloatArray, latentsCount: SizeT, batch: SizeT, height: SizeT, width: SizeT,
                           timesteps: FloatArray, timestepsCount: SizeT, text: FloatArray, textCount: SizeT, tokens: SizeT,
                           out: FloatArray, outCapacity: SizeT): Int
    fun sf_decode_latents_v2(p: Pointer, decoder: Int, latents: FloatArray, latentsCount: SizeT, batch: SizeT, height: SizeT,
                             width: SizeT, flags: Int, image: FloatArray, imageCapacity: SizeT): Int
    fun sf_encode_image_v2(p: Pointer, encoder: Int, image: FloatArray, imageCount: SizeT, batch: SizeT, height: SizeT,
                           width: SizeT, flags: Int, mean: FloatArray, meanCapacity: SizeT, logvar: FloatArray?,
                           logvarCapacity: SizeT): Int
    // Version 1 of the three above, without buffer sizes: part of the ABI, never called by the wrapper.
    @Deprecated("use sf_unet_predict_v2")
    fun sf_unet_predict(p: Pointer, latents: FloatArray, batch: SizeT, height: SizeT, width: SizeT, timesteps: FloatArray,
                        text: FloatArray, tokens: SizeT, out: FloatArray): Int
    @Deprecated("use sf_decode_latents_v2")
    fun sf_decode_latents(p: Pointer, decoder: Int, latents: FloatArray, batch: SizeT, height: SizeT, width: SizeT,
                          flags: Int, image: FloatArray): Int
    @Deprecated("use sf_encode_image_v2")
    fun sf_encode_image(p: Pointer, encoder: Int, image: FloatArray, batch: SizeT, height: SizeT, width: SizeT, flags: Int,
                        mean: FloatArray, logvar: FloatArray?): Int

    fun sf_rng_create(kind: Int, seed: Long, out: PointerByReference): Int
    fun sf_rng_destroy(rng: Pointer?)
    fun sf_rng_randn(rng: Pointer, out: FloatArray, count: SizeT): Int
    fun sf_rng_randn_f64(rng: Pointer, out: DoubleArray, count: SizeT): Int
    fun sf_rng_rand(rng: Pointer, out: FloatArray, count: SizeT): Int

    fun sf_sampler_name(sampler: Int): String?
    fun sf_sampler_from_name(name: String?): Int
    fun sf_params_set_floats(p: Pointer, key: Int, values: FloatArray, count: SizeT): Int
    fun sf_params_set_init_image(p: Pointer, rgb: ByteArray, width: Int, height: Int, stride: SizeT): Int

    fun sf_image_width(img: Pointer): Int
    fun sf_image_height(img: Pointer): Int
    fun sf_image_stride(img: Pointer): SizeT
    fun sf_image_pixels(img: Pointer): Pointer
    fun sf_image_parameters(img: Pointer): String
    fun sf_image_destroy(img: Pointer?)
    fun sf_image_copy(img: Pointer, buffer: ByteArray?, capacity: SizeT, stride: SizeT, needed: SizeTByReference?): Int
    fun sf_image_write_png(img: Pointer, path: String): Int
    fun sf_image_read_png(path: String, out: PointerByReference): Int

    fun sf_job_start(p: Pointer, params: Pointer?, out: PointerByReference): Int
    fun sf_job_step(job: Pointer): Int
    fun sf_job_latent_count(job: Pointer): SizeT
    fun sf_job_steps_done(job: Pointer): Int
    fun sf_job_steps_total(job: Pointer): Int
    fun sf_job_latents(job: Pointer, out: FloatArray, count: SizeT): Int
    fun sf_job_preview(job: Pointer, out: PointerByReference): Int
    fun sf_job_finish(job: Pointer, out: PointerByReference): Int
    fun sf_job_cancel(job: Pointer)
    fun sf_job_destroy(job: Pointer?)
    fun sf_job_seed(job: Pointer): Long  // uint64_t: the same bits
    fun sf_job_image_count(job: Pointer): SizeT
    fun sf_job_image_f32(job: Pointer, layout: Int, out: FloatArray, capacity: SizeT): Int
    fun sf_generate(p: Pointer, params: Pointer?, progress: ProgressFn?, user: Pointer?, out: PointerByReference): Int
    /** outImages: an sf_image *[capacity] (e.g. a Memory of capacity * Native.POINTER_SIZE bytes). */
    fun sf_generate_batch(p: Pointer, params: Pointer?, progress: ProgressFn?, user: Pointer?, outImages: Pointer,
                          capacity: SizeT, outCount: SizeTByReference): Int
    fun sf_pipeline_cancel(p: Pointer)

    fun sf_schedule_create(sampler: Int, configJson: String?, overrides: Pointer?, out: PointerByReference): Int
    fun sf_schedule_destroy(s: Pointer?)
    fun sf_schedule_set_steps(s: Pointer, steps: Int, latentCount: SizeT): Int
    fun sf_schedule_evaluations(s: Pointer): Int
    fun sf_schedule_timestep(s: Pointer, i: Int): Double
    fun sf_schedule_sigmas(s: Pointer, out: FloatArray?, capacity: SizeT, count: SizeTByReference): Int
    fun sf_schedule_init_noise_sigma(s: Pointer): Double
    fun sf_schedule_scale_input(s: Pointer, i: Int, x: FloatArray, out: FloatArray, count: SizeT): Int
    fun sf_schedule_step_needs_noise(s: Pointer, i: Int): Int
    fun sf_schedule_step(s: Pointer, i: Int, modelOutput: FloatArray, sample: FloatArray, count: SizeT, noise: FloatArray?): Int
    fun sf_schedule_begin_index(s: Pointer, strength: Double): Int
    fun sf_schedule_add_noise(s: Pointer, i: Int, original: FloatArray, noise: FloatArray, out: FloatArray, count: SizeT): Int
    fun sf_schedule_get_table(s: Pointer, table: Int, out: FloatArray?, capacity: SizeT, count: SizeTByReference): Int
    fun sf_schedule_final_alpha_cumprod(s: Pointer): Double

    companion object {
        val lib: SfLib by lazy {
            val path = System.getProperty("snapfusion.library") ?: System.getenv("SNAPFUSION_LIBRARY") ?: "snapfusion"
            val l = Native.load(path, SfLib::class.java)
            val abi = l.sf_abi_version()
            if (abi != ABI_VERSION) throw UnsatisfiedLinkError("libsnapfusion at $path has ABI version $abi; this binding needs $ABI_VERSION")
            l
        }
    }
}

internal val C: SfLib get() = SfLib.lib

// ---- enums and errors ------------------------------------------------------------------------------

enum class Status(val code: Int) {
    OK(0), INVALID_ARGUMENT(1), IO(2), BAD_MODEL(3), UNSUPPORTED(4), OUT_OF_MEMORY(5), CANCELLED(6), BACKEND(7),
    BAD_STATE(8), INTERNAL(9), NOT_FOUND(10), UNKNOWN(-1);

    companion object {
        fun of(code: Int) = values().firstOrNull { it.code == code } ?: UNKNOWN
    }
}

/** A failed call: the status and the library's message (it names the file, tensor or argument). */
open class SnapFusionException(val status: Status, val code: Int, message: String) : RuntimeException(message) {
    /** Pipeline.txt2imgBatch: the images finished before the failure (the caller closes them). */
    var images: List<Image> = emptyList()
        internal set

    /** A failed load: the problems it reported one by one (the library logs each at ERROR level)
     * besides its message. An inspection (Pipeline.inspect) reports every problem it finds in the
     * folder, and the message counts them and lists as many as fit; empty when the failure is its
     * message alone. */
    var problems: List<String> = emptyList()
        internal set
}

/** Stopped by cancel() or a progress callback. */
class CancelledException(message: String) : SnapFusionException(Status.CANCELLED, Status.CANCELLED.code, message)

enum class LogLevel { DEBUG, INFO, WARN, ERROR }

enum class Sampler(val code: Int) {
    DEFAULT(0), DDIM(1), PNDM(2), EULER(3), EULER_A(4), DPMPP_2M(5), LCM(6);

    /** The library's name ("ddim", "dpm++2m", ...). */
    val libraryName: String? get() = C.sf_sampler_name(code)

    companion object {
        fun fromName(name: String): Sampler {
            val code = C.sf_sampler_from_name(name)
            if (code == 0 && name != "default") throw SnapFusionException(Status.INVALID_ARGUMENT, 1, "unknown sampler '$name'")
            return values().first { it.code == code }
        }
    }
}

enum class Network(val bit: Int) { TEXT_ENCODER(1), UNET(2), VAE_DECODER(4), VAE_ENCODER(8), TAESD_DECODER(16), TAESD_ENCODER(32) }

/** sf_memory: the figures of a memory estimate (Pipeline.estimateMemory), in bytes. (Not "Memory":
 * that is JNA's class.) */
enum class MemoryFigure(val code: Int) {
    /** Expected peak resident set of the process from the load to the end of the generation. */
    PEAK(0),
    /** Packed weights resident at that peak. */
    WEIGHTS(1),
    /** Activation workspace resident at that peak. */
    WORKSPACE(2),
    /** The rest of the peak: weights being packed (staging, checkpoint pages), the run's buffers, a fixed base. */
    OTHER(3),
    /** Packed weights of all the pipeline's networks. */
    WEIGHTS_TOTAL(4),
    /** The largest workspace the generation plans. */
    WORKSPACE_RUN(5)
}

/** What a generation will need, in bytes (Pipeline.estimateMemory): peak = weights + workspace +
 * other, the process's expected peak resident set from the load to the end of the generation (the
 * library's share plus a fixed base for code and libraries), weights and workspace resident at that
 * peak; weightsTotal the packed weights of all the networks (the full load's weightBytes);
 * workspaceRun the largest workspace the generation plans (arenaBytes once it ran). An estimate
 * from the networks' packed sizes and planned workspaces, not a measurement. */
data class MemoryEstimate(val peak: Long, val weights: Long, val workspace: Long, val other: Long,
                          val weightsTotal: Long, val workspaceRun: Long) {
    operator fun get(figure: MemoryFigure): Long = when (figure) {
        MemoryFigure.PEAK -> peak
        MemoryFigure.WEIGHTS -> weights
        MemoryFigure.WORKSPACE -> workspace
        MemoryFigure.OTHER -> other
        MemoryFigure.WEIGHTS_TOTAL -> weightsTotal
        MemoryFigure.WORKSPACE_RUN -> workspaceRun
    }
}

/** sf_layout: the order of Job.imageF32's floats. */
enum class Layout(val code: Int) {
    NCHW(0),  // [3, H, W]: diffusers' output_type "pt"
    NHWC(1)   // [H, W, 3]: diffusers' output_type "np"
}

/** sf_schedule_table. */
enum class ScheduleTable(val code: Int) { BETAS(1), ALPHAS_CUMPROD(2) }

/** sf_weight_type (Pipeline.load(weights = ...)): how convolution and linear weights are held in
 * memory. DEFAULT keeps the checkpoint's type (f16 for F16 tensors, e.g. variant = "fp16", else
 * f32); F16 halves the memory (exact for an fp16 checkpoint, rounded to nearest even for an f32
 * one); Q8 quarters it (int8 per output channel; the layers next to the latents and the pixels and
 * the time embedding kept in f16). Activations are always f32. See Pipeline.weightBytes. */
/** How prompts are read (SF_PARAM_PROMPT_SYNTAX): PLAIN as diffusers (the default), A1111 with
 *  stable-diffusion-webui's (word:1.3) weights, BREAK and long prompts in chunks of 75 tokens. */
enum class PromptSyntax(val code: Int) {
    PLAIN(0), A1111(1)
}

enum class WeightType(val code: Int) {
    DEFAULT(0), F32(1), F16(2), Q8(3);

    /** "default", "f32", "f16", "q8": the names of the CLIs' --weights. */
    val typeName: String get() = name.toLowerCase(java.util.Locale.ROOT)

    companion object {
        /** A type by name ("f32", "f16", "q8" or "default", any case); INVALID_ARGUMENT otherwise. */
        @JvmStatic
        fun fromName(name: String): WeightType = values().firstOrNull { it.typeName == name.toLowerCase(java.util.Locale.ROOT) }
            ?: throw SnapFusionException(Status.INVALID_ARGUMENT, Status.INVALID_ARGUMENT.code,
                                         "unknown weight type '$name' (known: default, f32, f16, q8)")
    }
}


internal object Keys {
    const val THREADS = 1; const val LOG_LEVEL = 2
    const val VARIANT = 100; const val RANDOM_WEIGHTS = 101; const val RANDOM_SEED = 102; const val INSPECT_ONLY = 103
    const val TAESD_PATH = 104; const val COMPONENTS = 105; const val TOKENIZER_PATH = 106
    const val WEIGHT_TYPE = 107; const val LOW_MEMORY = 108; const val PACK_PATH = 109; const val CONFIG_PATH = 110; const val UNET_GUIDANCE = 120; const val LORAS = 111
    const val GEMM_BACKEND = 130
    const val PROMPT = 200; const val NEGATIVE_PROMPT = 201; const val WIDTH = 202; const val HEIGHT = 203
    const val STEPS = 204; const val GUIDANCE_SCALE = 205; const val SEED = 206; const val SAMPLER = 207
    const val KARRAS_SIGMAS = 208; const val CLIP_SKIP = 209; const val BATCH_COUNT = 210; const val STRENGTH = 211
    const val PREDICTION_TYPE = 212
    const val DECODER = 213; const val ETA = 214; const val TIMESTEP_SPACING = 215; const val PROMPT_SYNTAX = 216
    const val LATENTS = 300; const val PROMPT_EMBEDS = 301; const val NEGATIVE_EMBEDS = 302
    const val INFO_NETWORKS = 1; const val INFO_TEXT_TOKENS = 2; const val INFO_TEXT_HIDDEN = 3
    const val INFO_LATENT_CHANNELS = 4; const val INFO_DEFAULT_WIDTH = 5; const val INFO_DEFAULT_HEIGHT = 6
    const val INFO_ARENA_BYTES = 8
    const val INFO_VAE_SCALE = 7; const val INFO_PARAMETERS = 9; const val INFO_SIZE_MULTIPLE = 12
    const val INFO_ACTIVE_RUNS = 13
    const val INFO_SCALE_FACTOR = 14
    const val INFO_WEIGHT_BYTES = 15
    const val INFO_WEIGHT_TYPE = 16
    const val LATENTS_UNSCALED = 1; const val IMAGE_RAW = 2
}

/** Throws for a failed status, with the calling thread's message: sf_last_error, never
 * sf_context_last_error, which every thread of a context shares (with concurrent runs it may
 * hold another thread's failure). */
internal fun check(status: Int) {
    if (status == 0) return
    var msg = C.sf_last_error()
    if (msg.length == 0) msg = C.sf_status_string(status)
    val s = Status.of(status)
    throw if (s == Status.CANCELLED) CancelledException(msg) else SnapFusionException(s, status, msg)
}

// ---- native ownership ------------------------------------------------------------------------------

internal val cleaner: Cleaner = Cleaner.create()

/** One native object with a reference count: its owner holds one reference, each child one
 * more; the native destroy runs when the last is released, children first by construction.
 * `borrows`: another object this one reads from (a pipeline loaded from borrowed Files), held
 * like the parent. */
class NativeHandle internal constructor(
    @Volatile private var ptr: Pointer?, private val destroy: (Pointer) -> Unit, val kind: String,
    private val parent: NativeHandle?, private val borrows: NativeHandle? = null
) {
    private val refs = AtomicInteger(1)
    @Volatile internal var keep: Any? = null  // objects the native side points at (callbacks, lent buffers)

    init {
        parent?.retain()
        borrows?.retain()
        live.incrementAndGet()
    }

    fun ptrOrNull(): Pointer? = ptr
    fun get(): Pointer = ptr ?: throw SnapFusionException(Status.BAD_STATE, Status.BAD_STATE.code, "the $kind is closed")

    internal fun retain() {
        refs.incrementAndGet()
    }

    internal fun release() {
        if (refs.decrementAndGet() == 0) {
            val p = ptr
            ptr = null
            if (p != null) {
                destroy(p)
                live.decrementAndGet()
            }
            keep = null
            parent?.release()
            borrows?.release()
        }
    }

    companion object {
        /** Native objects alive now (for tests and leak hunting). */
        val live = AtomicInteger(0)
    }
}

/** Base of the wrappers: close() releases the owner's reference once; a Cleaner does it if
 * close() was never called. */
abstract class NativeObject internal constructor(internal val handle: NativeHandle) : AutoCloseable {
    private val cleanable: Cleaner.Cleanable = cleaner.register(this, OwnerRelease(handle))
    private var closed = false

    val isClosed: Boolean get() = closed

    /** The native pointer, for direct SfLib calls (valid until close()). */
    val nativePointer: Pointer get() = ptr()

    @Synchronized
    override fun close() {
        if (!closed) {
            closed = true
            cleanable.clean()
        }
    }

    internal fun ptr(): Pointer = if (closed) throw SnapFusionException(Status.BAD_STATE, Status.BAD_STATE.code, "the ${handle.kind} is closed") else handle.get()

    private class OwnerRelease(val h: NativeHandle) : Runnable {
        override fun run() = h.release()
    }
}

// ---- params ------------------------------------------------------------------------------------------

internal class Params : AutoCloseable {
    val ptr: Pointer

    init {
        val out = PointerByReference()
        check(C.sf_params_create(out))
        ptr = out.value
    }

    fun int(key: Int, v: Long?) = v?.let { check(C.sf_params_set_int(ptr, key, it)) }
    fun float(key: Int, v: Double?) = v?.let { check(C.sf_params_set_float(ptr, key, it)) }
    fun string(key: Int, v: String?) = v?.let { check(C.sf_params_set_string(ptr, key, it)) }
    fun floats(key: Int, v: FloatArray?) = v?.let { check(C.sf_params_set_floats(ptr, key, it, SizeT(it.size.toLong()))) }
    override fun close() = C.sf_params_destroy(ptr)
}

// ---- context -----------------------------------------------------------------------------------------

/** Threads, logging and error state shared by the pipelines made with it. log receives the library's
 * messages (every level); without it only ERROR messages are taken, for the problems of a failed load
 * (SnapFusionException.problems). */
class Context @JvmOverloads constructor(threads: Int? = null, log: ((LogLevel, String) -> Unit)? = null) :
    NativeObject(create()) {
    // A callback cannot throw through C: the first exception is kept and rethrown after the
    // call. Kept per thread: the library calls the log function on the thread of the call that
    // logs, and calls on other threads of this context must not see it. (A separate object: the
    // callback must not reference the Context, or the Cleaner could never see it unreachable.)
    private val sink = Sink()
    private val held = Held()

    internal class Sink {
        private val pending = ThreadLocal<Throwable?>()

        fun store(t: Throwable) {
            if (pending.get() == null) pending.set(t)
        }

        fun take(): Throwable? = pending.get()?.also { pending.remove() }
    }

    /** The ERROR messages of the call this thread is making through collecting(), per thread. */
    internal class Held {
        private val messages = ThreadLocal<ArrayList<String>?>()

        fun arm() = messages.set(ArrayList())
        fun add(message: String) {
            messages.get()?.add(message)
        }
        fun take(): List<String> = (messages.get() ?: ArrayList<String>()).also { messages.remove() }
    }

    private class LogAdapter(val log: ((LogLevel, String) -> Unit)?, val sink: Sink, val held: Held) : SfLib.LogFn {
        override fun invoke(user: Pointer?, level: Int, message: String?) {
            if (level >= 3) held.add(message ?: "")
            if (log == null) return
            try {
                log.invoke(LogLevel.values()[level.coerceIn(0, 3)], message ?: "")
            } catch (t: Throwable) {
                sink.store(t)
            }
        }
    }

    init {
        try {
            threads?.let { this.threads = it }
            val fn = LogAdapter(log, sink, held)
            call(C.sf_context_set_log_callback(handle.get(), fn, null))
            handle.keep = fn
            call(C.sf_context_set_int(handle.get(), Keys.LOG_LEVEL, if (log != null) 0L else 3L))
        } catch (t: Throwable) {
            close()
            throw t
        }
    }

    /** Runs block (a C call of this context, returning its status) like call(status), and gives the
     * exception of a failure the ERROR messages logged during the call besides its own message as
     * `problems`. */
    internal fun collecting(block: () -> Int) {
        held.arm()
        val status = try {
            block()
        } catch (t: Throwable) {
            held.take()
            throw t
        }
        val messages = held.take()
        try {
            call(status)
        } catch (e: SnapFusionException) {
            val problems = ArrayList(messages)
            problems.remove(e.message)  // the failure's own message, logged as every failure is
            e.problems = problems
            throw e
        }
    }

    /** After a C call on this context (or a pipeline of it): throws, once, what went wrong. first:
     * what a progress callback threw during the call; it wins over the failure it caused. */
    internal fun call(status: Int, first: Throwable? = null) {
        val logged = sink.take()  // taken either way: it must not reach this thread's next call
        (first ?: logged)?.let { throw it }
        check(status)
    }

    var threads: Int
        get() = LongByReference().also { call(C.sf_context_get_int(ptr(), Keys.THREADS, it)) }.value.toInt()
        set(n) = call(C.sf_context_set_int(ptr(), Keys.THREADS, n.toLong()))

    fun setLogLevel(level: LogLevel) = call(C.sf_context_set_int(ptr(), Keys.LOG_LEVEL, level.ordinal.toLong()))

    /** For tests: sets the log level from a raw number (the library checks it). */
    fun setLogLevelRaw(level: Long) = call(C.sf_context_set_int(ptr(), Keys.LOG_LEVEL, level))

    /** The last failure of any call made with this context: shared by all its threads (with
     * concurrent runs, read the exception each call throws instead). */
    val lastError: String get() = C.sf_context_last_error(handle.ptrOrNull())

    private companion object {
        fun create(): NativeHandle {
            val out = PointerByReference()
            check(C.sf_context_create(out))
            return NativeHandle(out.value, { C.sf_context_destroy(it) }, "context", null)
        }
    }
}

// ---- images ------------------------------------------------------------------------------------------

/** An RGB8 image made by the library. */
class Image internal constructor(p: Pointer) : NativeObject(NativeHandle(p, { C.sf_image_destroy(it) }, "image", null)) {
    val width: Int get() = C.sf_image_width(ptr())
    val height: Int get() = C.sf_image_height(ptr())

    /** Packed RGB8, rows of width*3 bytes, top row first. */
    val pixels: ByteArray
        get() {
            val row = width.toLong() * 3
            val buf = ByteArray((row * height).toInt())
            check(C.sf_image_copy(ptr(), buf, SizeT(buf.size.toLong()), SizeT(row), null))
            return buf
        }

    /** The generation parameters in A1111's "parameters" text form ("" if none). */
    val parameters: String get() = C.sf_image_parameters(ptr())

    /** The seed in `parameters` ("Seed: N" on its settings line: the one drawn for SEED_RANDOM,
     * S + i for image i of a batch), as the Long with the same 64 bits; null if none. */
    val seed: Long?
        get() {
            val settings = parameters.substringAfterLast('\n')
            val m = Regex("(?:^|, )Seed: (\\d+)(?:,|$)").find(settings) ?: return null
            return java.lang.Long.parseUnsignedLong(m.groupValues[1])
        }

    /** Writes a PNG with the parameters as a "parameters" text chunk. */
    fun save(path: String) = check(C.sf_image_write_png(ptr(), path))

    companion object {
        /** Reads an 8-bit RGB or RGBA PNG. */
        @JvmStatic
        fun open(path: String): Image {
            val out = PointerByReference()
            check(C.sf_image_read_png(path, out))
            return Image(out.value)
        }
    }
}

// ---- generation options -----------------------------------------------------------------------------

/** The generation parameters; null means the library's default. */
data class GenerationOptions @JvmOverloads constructor(
    val prompt: String? = null,
    val negativePrompt: String? = null,
    val width: Int? = null,
    val height: Int? = null,
    val steps: Int? = null,
    val guidanceScale: Double? = null,
    val seed: Long? = null,          // 64-bit, read as unsigned by the library; SEED_RANDOM draws one
    val sampler: Sampler? = null,    // null: the folder's scheduler
    val karrasSigmas: Boolean? = null,
    val clipSkip: Int? = null,
    val strength: Double? = null,
    val initImage: Image? = null,
    val latents: FloatArray? = null,
    val promptEmbeds: FloatArray? = null,
    val negativeEmbeds: FloatArray? = null,
    val decoder: Network? = null,
    val eta: Double? = null,
    val promptSyntax: PromptSyntax? = null
) {
    internal fun toParams(): Params {
        val p = Params()
        try {
            p.string(Keys.PROMPT, prompt)
            p.string(Keys.NEGATIVE_PROMPT, negativePrompt)
            p.int(Keys.WIDTH, width?.toLong())
            p.int(Keys.HEIGHT, height?.toLong())
            p.int(Keys.STEPS, steps?.toLong())
            p.float(Keys.GUIDANCE_SCALE, guidanceScale)
            p.int(Keys.SEED, seed)
            p.int(Keys.SAMPLER, sampler?.code?.toLong())
            p.int(Keys.KARRAS_SIGMAS, karrasSigmas?.let { if (it) 1L else 0L })
            p.int(Keys.CLIP_SKIP, clipSkip?.toLong())
            p.float(Keys.STRENGTH, strength)
            p.floats(Keys.LATENTS, latents)
            p.floats(Keys.PROMPT_EMBEDS, promptEmbeds)
            p.floats(Keys.NEGATIVE_EMBEDS, negativeEmbeds)
            p.int(Keys.DECODER, decoder?.bit?.toLong())
            p.float(Keys.ETA, eta)
            p.int(Keys.PROMPT_SYNTAX, promptSyntax?.code?.toLong())
            initImage?.let {
                check(C.sf_params_set_init_image(p.ptr, it.pixels, it.width, it.height, SizeT(it.width * 3L)))
            }
        } catch (t: Throwable) {
            p.close()
            throw t
        }
        return p
    }
}

// ---- pipelines ----------------------------------------------------------------------------------------

/** The latents of an image (Pipeline.encodeImage): mean and log-variance (null for TAESD). */
class EncodedLatents(val mean: FloatArray, val logvar: FloatArray?)

/** A loaded diffusers model folder. Runs on one pipeline (txt2img, jobs, building blocks) may go
 * on concurrently from different threads and give the same results as alone; they share the
 * context's worker threads. Each Job is used by one thread at a time (cancel() excepted); close
 * the pipeline once no thread uses it. */
class Pipeline private constructor(val context: Context, private val ownContext: Boolean, p: Pointer,
                                   files: NativeHandle?,
                                   /** True for a pipeline that was checked, not loaded (Pipeline.inspect). */
                                   val isInspectOnly: Boolean) :
    NativeObject(NativeHandle(p, { C.sf_pipeline_destroy(it) }, "pipeline", context.handle, files)) {

    override fun close() {
        super.close()
        if (ownContext) context.close()
    }

    private fun call(status: Int, first: Throwable? = null) = context.call(status, first)

    private fun infoInt(key: Int) = LongByReference().also { call(C.sf_pipeline_get_int(ptr(), key, it)) }.value
    val networks: Set<Network> get() = infoInt(Keys.INFO_NETWORKS).let { m -> Network.values().filter { (m and it.bit.toLong()) != 0L }.toSet() }
    val textTokens: Int get() = infoInt(Keys.INFO_TEXT_TOKENS).toInt()
    val textHidden: Int get() = infoInt(Keys.INFO_TEXT_HIDDEN).toInt()
    val latentChannels: Int get() = infoInt(Keys.INFO_LATENT_CHANNELS).toInt()
    val defaultWidth: Int get() = infoInt(Keys.INFO_DEFAULT_WIDTH).toInt()
    val defaultHeight: Int get() = infoInt(Keys.INFO_DEFAULT_HEIGHT).toInt()
    val parameterCount: Long get() = infoInt(Keys.INFO_PARAMETERS)
    val vaeScale: Double get() = DoubleByReference().also { call(C.sf_pipeline_get_float(ptr(), Keys.INFO_VAE_SCALE, it)) }.value
    /** Image sides must be multiples of this (the decoder's factor times 2^(the UNet's down-samplings); 64 for SD-1.x). */
    val sizeMultiple: Int get() = infoInt(Keys.INFO_SIZE_MULTIPLE).toInt()
    /** Runs in flight now on this pipeline (jobs alive, calls in progress on any thread). */
    val activeRuns: Int get() = infoInt(Keys.INFO_ACTIVE_RUNS).toInt()
    /** Image pixels per latent pixel of the pipeline's decoder (8 for SD-1.x). */
    val scaleFactor: Int get() = infoInt(Keys.INFO_SCALE_FACTOR).toInt()
    /** Bytes the networks' weights take as loaded (SF_INFO_WEIGHT_BYTES): packed convolution and
     * linear weights in their WeightType, norms, embeddings. With lowMemory, those of the networks
     * resident now (none right after loading). */
    val weightBytes: Long get() = infoInt(Keys.INFO_WEIGHT_BYTES)
    /** The WeightType the UNet's layers are held in: F32, F16 or Q8, never DEFAULT (an fp16
     * checkpoint's default is F16) (SF_INFO_WEIGHT_TYPE). BAD_STATE for a pipeline without a UNet. */
    val weightType: WeightType get() = infoInt(Keys.INFO_WEIGHT_TYPE).let { code -> WeightType.values().first { it.code.toLong() == code } }
    /** Activation memory held by the runs' workspaces (SF_INFO_ARENA_BYTES): one per run in flight
     * plus one kept for the next run. */
    val arenaBytes: Long get() = infoInt(Keys.INFO_ARENA_BYTES)

    /** The memory a generation with these options (what counts: the size, guidanceScale, initImage,
     * decoder and the batch count; the prompt may be left out) will need on this pipeline as loaded
     * (weight type, low-memory mode) and with its context's thread count
     * (sf_pipeline_estimate_memory). Works on an inspected pipeline (Pipeline.inspect), which read no
     * weight: check that a model fits before anything is packed. The same options give the same
     * estimate on an inspected and on a loaded pipeline. INVALID_ARGUMENT for sides that are no
     * multiples of sizeMultiple, BAD_STATE for a pipeline without a UNet or decoder. */
    @JvmOverloads
    fun estimateMemory(options: GenerationOptions = GenerationOptions(), batchCount: Int? = null): MemoryEstimate {
        val v = LongArray(MemoryFigure.values().size)
        options.toParams().use { p ->
            p.int(Keys.BATCH_COUNT, batchCount?.toLong())
            val out = LongByReference()
            for (figure in MemoryFigure.values()) {  // one figure per call
                call(C.sf_pipeline_estimate_memory(ptr(), p.ptr, figure.code, out))
                v[figure.ordinal] = out.value
            }
        }
        return MemoryEstimate(v[0], v[1], v[2], v[3], v[4], v[5])
    }

    /** Writes the weights of the text encoder, UNet and VAE as loaded (their WeightType, this CPU's
     * GEMM panel layout) to a pack file (sf_pipeline_write_pack) that load(..., pack = path) maps
     * and uses in place. Not for lowMemory or inspect-only pipelines. */
    fun writePack(path: String) { call(C.sf_pipeline_write_pack(ptr(), path)) }

    /** Text (or JSON with json = true) description of the model. */
    @JvmOverloads
    fun describe(json: Boolean = false): String {
        val need = SizeTByReference()
        val fmt = if (json) 1 else 0
        call(C.sf_pipeline_describe(ptr(), fmt, null, SizeT(0), need))
        val buf = ByteArray(need.value.toInt())
        call(C.sf_pipeline_describe(ptr(), fmt, buf, SizeT(buf.size.toLong()), need))
        return String(buf, 0, buf.indexOf(0.toByte()).let { if (it < 0) buf.size else it }, Charsets.UTF_8)
    }

    /** CLIP token ids as SD pipelines make them (textTokens ids). */
    fun tokenize(prompt: String): IntArray {
        val ids = IntArray(textTokens)
        call(C.sf_tokenize(ptr(), prompt, ids, SizeT(ids.size.toLong()), null))
        return ids
    }

    /** Text embedding [tokens, hidden] of one prompt. */
    @JvmOverloads
    fun encodePrompt(prompt: String, clipSkip: Int = 0): FloatArray {
        val out = FloatArray(textTokens * textHidden)
        call(C.sf_encode_prompt(ptr(), prompt, clipSkip, out, SizeT(out.size.toLong())))
        return out
    }

    /** The vocabulary entry of a token id in the tokenizer's byte-level form ("cat</w>"). */
    fun tokenText(id: Int): String {
        val need = SizeTByReference()
        call(C.sf_token_text(ptr(), id, null, SizeT(0), need))
        val buf = ByteArray(need.value.toInt())
        call(C.sf_token_text(ptr(), id, buf, SizeT(buf.size.toLong()), need))
        return String(buf, 0, buf.size - 1, Charsets.UTF_8)
    }

    /** Embeddings [batch, tokens, hidden] of ids [batch, tokens]. */
    @JvmOverloads
    fun encodeIds(ids: IntArray, batch: Int, clipSkip: Int = 0): FloatArray {
        if (batch <= 0 || ids.size % batch != 0)
            throw SnapFusionException(Status.INVALID_ARGUMENT, 1, "encodeIds: ${ids.size} ids are not $batch rows")
        val tokens = ids.size / batch
        val out = FloatArray(batch * tokens * textHidden)
        call(C.sf_encode_ids(ptr(), ids, SizeT(batch.toLong()), SizeT(tokens.toLong()), clipSkip, out, SizeT(out.size.toLong())))
        return out
    }

    /** One UNet evaluation on latents NCHW [batch, C, height, width] with one timestep per item and
     * text embeddings [batch, tokens, hidden]. Every array crosses with its size
     * (sf_unet_predict_v2): one of the wrong size throws INVALID_ARGUMENT naming the size expected. */
    fun unetPredict(latents: FloatArray, batch: Int, height: Int, width: Int, timesteps: FloatArray, text: FloatArray): FloatArray {
        val out = FloatArray(latents.size)
        // Without a text encoder its width is unknown: the prompt length the library makes is assumed
        // (the library checks text.size against batch * tokens * the UNet's width either way).
        val per = if (networks.contains(Network.TEXT_ENCODER)) batch.toLong() * textHidden else 0L
        val tokens = if (per > 0) maxOf(1L, text.size / per) else textTokens.toLong()
        call(C.sf_unet_predict_v2(ptr(), latents, SizeT(latents.size.toLong()), SizeT(batch.toLong()), SizeT(height.toLong()),
            SizeT(width.toLong()), timesteps, SizeT(timesteps.size.toLong()), text, SizeT(text.size.toLong()), SizeT(tokens),
            out, SizeT(out.size.toLong())))
        return out
    }

    /** Latents [batch, C, h, w] (pipeline space unless unscaled) -> image [batch, 3, 8h, 8w] in [-1, 1]
     * (TAESD's [0, 1] with raw). Sizes are checked by the library (sf_decode_latents_v2). */
    @JvmOverloads
    fun decode(latents: FloatArray, batch: Int, height: Int, width: Int, decoder: Network = Network.VAE_DECODER,
               unscaled: Boolean = false, raw: Boolean = false): FloatArray {
        val f = scaleFactor
        val out = FloatArray(batch * 3 * f * height * f * width)
        val flags = (if (unscaled) Keys.LATENTS_UNSCALED else 0) or (if (raw) Keys.IMAGE_RAW else 0)
        call(C.sf_decode_latents_v2(ptr(), decoder.bit, latents, SizeT(latents.size.toLong()), SizeT(batch.toLong()),
            SizeT(height.toLong()), SizeT(width.toLong()), flags, out, SizeT(out.size.toLong())))
        return out
    }

    /** Image NCHW [batch, 3, height, width] in [-1, 1] (TAESD's [0, 1] with raw) -> latents
     * [batch, C, height/8, width/8] in pipeline space unless unscaled. Sizes are checked by the
     * library (sf_encode_image_v2). */
    @JvmOverloads
    fun encodeImage(image: FloatArray, batch: Int, height: Int, width: Int, encoder: Network = Network.VAE_ENCODER,
                    unscaled: Boolean = false, raw: Boolean = false): EncodedLatents {
        val f = scaleFactor
        val count = batch * latentChannels * (height / f) * (width / f)
        val mean = FloatArray(count)
        val logvar = if (encoder == Network.TAESD_ENCODER) null else FloatArray(count)
        val flags = (if (unscaled) Keys.LATENTS_UNSCALED else 0) or (if (raw) Keys.IMAGE_RAW else 0)
        call(C.sf_encode_image_v2(ptr(), encoder.bit, image, SizeT(image.size.toLong()), SizeT(batch.toLong()),
            SizeT(height.toLong()), SizeT(width.toLong()), flags, mean, SizeT(mean.size.toLong()), logvar,
            SizeT((logvar?.size ?: 0).toLong())))
        return EncodedLatents(mean, logvar)
    }

    /** One image. progress(step, total) runs after each step; returning true stops the run
     * (CancelledException). An exception it throws is rethrown here. */
    @JvmOverloads
    fun txt2img(options: GenerationOptions, progress: ((Int, Int) -> Boolean)? = null): Image {
        // (A named class, not an object expression in a lambda: kotlinc 1.3 drops such classes.)
        val fn = if (progress != null) ProgressAdapter(progress) else null
        val out = PointerByReference()
        val status = options.toParams().use { C.sf_generate(ptr(), it.ptr, fn, null, out) }
        call(status, fn?.pending)
        return Image(out.value)
    }

    /** count images from consecutive seeds S, S+1, ... (S = options.seed, or one drawn for
     * SEED_RANDOM), made one after another (sf_generate_batch): image i equals
     * txt2img(options.copy(seed = S + i)). progress sees the steps of the whole batch. On a
     * failure the exception carries the images finished before it (exception.images). */
    @JvmOverloads
    fun txt2imgBatch(options: GenerationOptions, count: Int, progress: ((Int, Int) -> Boolean)? = null): List<Image> {
        val fn = if (progress != null) ProgressAdapter(progress) else null
        val capacity = maxOf(count, 1)  // the library checks the count against it (and rejects < 1)
        val outs = Memory(capacity.toLong() * Native.POINTER_SIZE).also { it.clear() }
        val made = SizeTByReference()
        val status = options.toParams().use { p ->
            p.int(Keys.BATCH_COUNT, count.toLong())
            C.sf_generate_batch(ptr(), p.ptr, fn, null, outs, SizeT(capacity.toLong()), made)
        }
        // The finished images are the caller's whatever the status.
        val images = (0 until minOf(made.value, capacity.toLong()).toInt()).map { Image(outs.getPointer(it.toLong() * Native.POINTER_SIZE)) }
        try {
            call(status, fn?.pending)
        } catch (e: SnapFusionException) {
            e.images = images
            throw e
        }
        return images
    }

    /** Starts a step-wise generation. */
    fun start(options: GenerationOptions): Job {
        val out = PointerByReference()
        val status = options.toParams().use { C.sf_job_start(ptr(), it.ptr, out) }
        call(status)
        return Job(this, out.value, C.sf_job_latent_count(out.value).toInt())
    }

    /** The steps of a generation, lazily: each element is one finished step; the job's
     * image is decoded after the last (job.image), and the job is closed by the caller. */
    fun steps(job: Job): Sequence<Step> = sequence {
        while (job.stepsDone < job.stepsTotal) yield(job.step())
        job.finish()
    }

    /** Thread-safe: cancels whatever the pipeline is running now. */
    fun cancel() {
        handle.ptrOrNull()?.let { C.sf_pipeline_cancel(it) }
    }

    internal fun callFor(status: Int) = call(status)

    companion object {
        /** Loads a diffusers folder; without a context the pipeline makes (and closes) its own.
         * weights: how the networks' weights are held (null: as the checkpoint stores them; see
         * weightBytes). lowMemory: one network resident at a time, each packed when a run needs it
         * (less memory, the packing time of every network per generation). inspectOnly: check the
         * folder without loading it (see inspect). pack: a pack file (writePack, `snapfusion pack`)
         * the weights come from, mapped and used in place (the folder then needs configs only).
         * path may also be a single-file checkpoint (one .safetensors in the original LDM layout);
         * configPath (SF_PARAM_CONFIG_PATH): the diffusers folder whose configs, scheduler and
         * tokenizer describe it (null: its architecture is inferred as SD-1.x's from the shapes).
         * unetGuidance: the guidance scale unetPredict gives an LCM-distilled UNet (time_cond_proj_dim;
         * default 8); generations take their own guidance scale.
         * loras: LoRA files (kohya/A1111 or diffusers/PEFT .safetensors) with their scales, merged
         * into the UNet and text encoder at load (SF_PARAM_LORAS), e.g. listOf("a.safetensors" to
         * 0.75, "b.safetensors" to 0.4): their deltas add up. */
        @JvmStatic
        @JvmOverloads
        fun load(path: String, context: Context? = null, threads: Int? = null, variant: String? = null,
                 randomWeights: Boolean = false, randomSeed: Long? = null, taesdPath: String? = null,
                 components: Set<Network>? = null, tokenizerPath: String? = null, weights: WeightType? = null,
                 lowMemory: Boolean = false, inspectOnly: Boolean = false, pack: String? = null,
                 configPath: String? = null, unetGuidance: Double? = null,
                 loras: List<Pair<String, Double>>? = null): Pipeline =
            loadWith(context, threads, variant, randomWeights, randomSeed, taesdPath, components, tokenizerPath,
                     weights, lowMemory, inspectOnly, null, pack, configPath, unetGuidance, loras) { ctx, options, out ->
                C.sf_pipeline_load(ctx, path, options, out)
            }

        /** Checks a model folder without loading it (SF_PARAM_INSPECT_ONLY), with the options of load:
         * every config parsed, every network's architecture built and every checkpoint tensor checked
         * against it (names, shapes, types, tensors left over), without reading or packing a weight. A
         * folder with problems throws (BAD_MODEL, usually) with all of them in exception.problems (the
         * message counts them and lists as many as fit). The pipeline returned runs nothing (generating
         * throws BAD_STATE; isInspectOnly is true) but answers the shape queries, weightBytes,
         * parameterCount and weightType as the load with the same options would, and estimateMemory:
         * inspect first to know whether a model fits before anything is packed. */
        @JvmStatic
        @JvmOverloads
        fun inspect(path: String, context: Context? = null, threads: Int? = null, variant: String? = null,
                    randomWeights: Boolean = false, randomSeed: Long? = null, taesdPath: String? = null,
                    components: Set<Network>? = null, tokenizerPath: String? = null, weights: WeightType? = null,
                    lowMemory: Boolean = false, configPath: String? = null,
                    loras: List<Pair<String, Double>>? = null): Pipeline =
            load(path, context, threads, variant, randomWeights, randomSeed, taesdPath, components, tokenizerPath,
                 weights, lowMemory, inspectOnly = true, configPath = configPath, loras = loras)

        /** inspect for a set of files in memory (the options of loadFiles). */
        @JvmStatic
        @JvmOverloads
        fun inspectFiles(files: Files, context: Context? = null, threads: Int? = null, variant: String? = null,
                         randomWeights: Boolean = false, randomSeed: Long? = null, taesdPath: String? = null,
                         components: Set<Network>? = null, tokenizerPath: String? = null, weights: WeightType? = null,
                         lowMemory: Boolean = false): Pipeline =
            loadFiles(files, context, threads, variant, randomWeights, randomSeed, taesdPath, components, tokenizerPath,
                      weights, lowMemory, inspectOnly = true)

        /** Loads a model from a set of files in memory (sf_pipeline_load_files), with the options of
         * load (taesdPath and tokenizerPath stay paths in the file system). Messages name the set's
         * files "memory:PATH". A set of copied files may be closed right after; a pipeline loaded from
         * a set with borrowed buffers (Files.add(path, ByteBuffer)) keeps the set's native object and
         * the buffers reachable until it is closed (or collected) itself. */
        @JvmStatic
        @JvmOverloads
        fun loadFiles(files: Files, context: Context? = null, threads: Int? = null, variant: String? = null,
                      randomWeights: Boolean = false, randomSeed: Long? = null, taesdPath: String? = null,
                      components: Set<Network>? = null, tokenizerPath: String? = null, weights: WeightType? = null,
                      lowMemory: Boolean = false, inspectOnly: Boolean = false, pack: String? = null,
                      unetGuidance: Double? = null, loras: List<Pair<String, Double>>? = null): Pipeline =
            files.locked {  // a set is used by one thread at a time
                val set = files.ptr()
                val borrows = if (files.borrowed) files.handle else null
                loadWith(context, threads, variant, randomWeights, randomSeed, taesdPath, components, tokenizerPath,
                         weights, lowMemory, inspectOnly, borrows, pack, null, unetGuidance, loras) { ctx, options, out ->
                    C.sf_pipeline_load_files(ctx, set, options, out)
                }
            }

        private fun loadWith(context: Context?, threads: Int?, variant: String?, randomWeights: Boolean, randomSeed: Long?,
                         taesdPath: String?, components: Set<Network>?, tokenizerPath: String?, weights: WeightType?,
                         lowMemory: Boolean, inspectOnly: Boolean, borrows: NativeHandle?, pack: String?,
                         configPath: String?, unetGuidance: Double?, loras: List<Pair<String, Double>>?,
                         call: (Pointer, Pointer, PointerByReference) -> Int): Pipeline {
            // SF_PARAM_LORAS: one "PATH<TAB>SCALE" line each (checked before anything is made)
            val loraList = loras?.takeIf { it.isNotEmpty() }?.joinToString("\n") { (path, scale) ->
                if (path.isEmpty() || path.contains('\n') || path.contains('\t'))
                    throw SnapFusionException(Status.INVALID_ARGUMENT, Status.INVALID_ARGUMENT.code,
                                              "loras: '$path' is not a usable path (empty, or with a tab or newline)")
                if (scale.isNaN() || scale.isInfinite())
                    throw SnapFusionException(Status.INVALID_ARGUMENT, Status.INVALID_ARGUMENT.code,
                                              "loras: the scale of $path is not finite")
                path + "\t" + scale.toString()
            }
            val ctx = context ?: Context(threads)
            if (context != null && threads != null) ctx.threads = threads
            try {
                val out = PointerByReference()
                ctx.collecting {  // a failed inspection's problems go into the exception
                    Params().use { p ->
                        p.string(Keys.VARIANT, variant)
                        if (randomWeights) p.int(Keys.RANDOM_WEIGHTS, 1)
                        p.int(Keys.RANDOM_SEED, randomSeed)
                        if (inspectOnly) p.int(Keys.INSPECT_ONLY, 1)
                        p.string(Keys.TAESD_PATH, taesdPath)
                        p.string(Keys.TOKENIZER_PATH, tokenizerPath)
                        p.int(Keys.COMPONENTS, components?.fold(0L) { m, n -> m or n.bit.toLong() })
                        p.int(Keys.WEIGHT_TYPE, weights?.code?.toLong())
                        if (lowMemory) p.int(Keys.LOW_MEMORY, 1)
                        p.string(Keys.PACK_PATH, pack)
                        p.string(Keys.CONFIG_PATH, configPath)
                        p.float(Keys.UNET_GUIDANCE, unetGuidance)
                        p.string(Keys.LORAS, loraList)
                        call(ctx.ptr(), p.ptr, out)
                    }
                }
                return Pipeline(ctx, context == null, out.value, borrows, inspectOnly)
            } catch (t: Throwable) {
                if (context == null) ctx.close()
                throw t
            }
        }
    }
}

// ---- model files in memory -----------------------------------------------------------------------------

/** A set of model files held in memory (sf_files): a diffusers folder's files by their relative
 * '/'-separated paths ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
 * "tokenizer/vocab.json", ...), for apps whose weights are not in the file system (assets, a download
 * kept in memory). Load it with Pipeline.loadFiles.
 *
 * add(path, ByteArray) copies the bytes (JNA's pointer to an array is valid during a call only): the set
 * may be closed right after loading, the pipelines keep what they need. add(path, ByteBuffer) lends a
 * direct buffer without copying (e.g. a MappedByteBuffer of a large safetensors file): the set and every
 * pipeline loaded from it keep the buffer reachable, and the set's native object alive (snapfusion.h
 * allows destroying a set under live pipelines for copied files only), until the last of them is closed
 * or collected. Its bytes must not change meanwhile; the library never writes them.
 *
 * Each set is used by one thread at a time (the methods here are synchronized). */
class Files : NativeObject(create()) {
    private val sizes = java.util.TreeMap<String, Long>()

    init {
        // Every buffer ever lent (a replaced one may still be read by a pipeline), held by the native
        // handle only: released with the native set, after the last pipeline that reads it.
        handle.keep = ArrayList<ByteBuffer>()
    }

    /** Runs block holding the set's lock (that of add and close). Not inline: Kotlin 1.3 mis-compiles
     * lambdas made inside inlined ones. */
    @Synchronized
    internal fun <T> locked(block: () -> T): T = block()

    /** True once a buffer was lent (add(path, ByteBuffer)): pipelines loaded then keep the set. */
    @Volatile
    var borrowed = false
        private set

    /** The paths of the set's files, sorted. */
    val paths: List<String> @Synchronized get() = sizes.keys.toList()
    /** The number of files. */
    val size: Int @Synchronized get() = sizes.size

    private fun checkPath(path: String) {
        if (path.indexOf('\u0000') >= 0)
            throw SnapFusionException(Status.INVALID_ARGUMENT, Status.INVALID_ARGUMENT.code, "Files.add: path \"$path\" contains a NUL character")
    }

    /** Adds (or replaces) the file at path (relative, '/'-separated, no "..") with a copy of data.
     * INVALID_ARGUMENT (naming the path) for a bad path, or one that is a folder of the set's files or
     * lies under one. */
    @Synchronized
    fun add(path: String, data: ByteArray) {
        checkPath(path)
        val set = ptr()
        if (data.isEmpty()) {
            check(C.sf_files_add(set, path, null, SizeT(0), 1))
        } else {
            val copy = Memory(data.size.toLong())
            try {
                copy.write(0, data, 0, data.size)
                check(C.sf_files_add(set, path, copy, SizeT(data.size.toLong()), 1))
            } finally {
                copy.close()  // the library has its own copy
            }
        }
        sizes[path] = data.size.toLong()
    }

    /** Adds (or replaces) the file at path with the bytes between data's position and limit, lent
     * without a copy: data must be a direct buffer (ByteBuffer.allocateDirect, FileChannel.map; a
     * read-only one is fine). It stays reachable from this set and from every Pipeline loaded from it
     * until the last of them is closed; do not change its bytes meanwhile. */
    @Synchronized
    fun add(path: String, data: ByteBuffer) {
        checkPath(path)
        if (!data.isDirect)
            throw SnapFusionException(Status.INVALID_ARGUMENT, Status.INVALID_ARGUMENT.code,
                "Files.add(\"$path\"): a heap ByteBuffer has no fixed address; lend a direct buffer, or copy with add(path, ByteArray)")
        val set = ptr()
        val size = data.remaining()
        val address = if (size == 0) null else Native.getDirectBufferPointer(data).share(data.position().toLong())
        check(C.sf_files_add(set, path, address, SizeT(size.toLong()), 0))
        @Suppress("UNCHECKED_CAST")
        (handle.keep as MutableList<ByteBuffer>).add(data)
        borrowed = true
        sizes[path] = size.toLong()
    }

    companion object {
        private fun create(): NativeHandle {
            val out = PointerByReference()
            check(C.sf_files_create(out))
            return NativeHandle(out.value, { C.sf_files_destroy(it) }, "files", null)
        }

        /** A set of copies of the files of a map {relative path: bytes}. */
        @JvmStatic
        fun fromMap(files: Map<String, ByteArray>): Files {
            val set = Files()
            try {
                for ((path, data) in files) set.add(path, data)
            } catch (t: Throwable) {
                set.close()
                throw t
            }
            return set
        }

        /** Every regular file under dir (recursively, following links), read and copied into a new
         * set by its path relative to dir. */
        @JvmStatic
        fun fromFolder(dir: String): Files {
            val root = java.nio.file.Paths.get(dir)
            if (!java.nio.file.Files.isDirectory(root))
                throw SnapFusionException(Status.IO, Status.IO.code, "$dir: not a folder")
            val set = Files()
            try {
                val found = java.nio.file.Files.walk(root, java.nio.file.FileVisitOption.FOLLOW_LINKS)
                val files = try {
                    found.filter { java.nio.file.Files.isRegularFile(it) }.sorted().toArray()
                } finally {
                    found.close()
                }
                for (f in files) {
                    val file = f as java.nio.file.Path
                    val rel = root.relativize(file).joinToString("/")
                    val bytes = try {
                        java.nio.file.Files.readAllBytes(file)
                    } catch (e: java.io.IOException) {
                        throw SnapFusionException(Status.IO, Status.IO.code, "$file: $e")
                    }
                    set.add(rel, bytes)
                }
            } catch (t: Throwable) {
                set.close()
                throw t
            }
            return set
        }
    }
}

/** Calls a Kotlin progress function from C; a Throwable never crosses C: it is kept and rethrown. */
private class ProgressAdapter(val cb: (Int, Int) -> Boolean) : SfLib.ProgressFn {
    var pending: Throwable? = null

    override fun invoke(user: Pointer?, step: Int, total: Int): Int = try {
        if (cb(step, total)) 1 else 0
    } catch (t: Throwable) {
        if (pending == null) pending = t
        1
    }
}

/** One finished denoising step. */
class Step internal constructor(val job: Job, val index: Int, val total: Int) {
    fun latents(): FloatArray = job.latents()
    fun preview(): Image = job.preview()
}

/** A running generation (Pipeline.start). */
class Job internal constructor(val pipeline: Pipeline, p: Pointer, private val latentCount: Int) :
    NativeObject(NativeHandle(p, { C.sf_job_destroy(it) }, "job", pipeline.handle)) {
    var image: Image? = null
        private set

    val stepsDone: Int get() = C.sf_job_steps_done(ptr())
    val stepsTotal: Int get() = C.sf_job_steps_total(ptr())

    fun step(): Step {
        pipeline.callFor(C.sf_job_step(ptr()))
        return Step(this, stepsDone, stepsTotal)
    }

    fun latents(): FloatArray {
        val out = FloatArray(latentCount)
        pipeline.callFor(C.sf_job_latents(ptr(), out, SizeT(out.size.toLong())))
        return out
    }

    fun preview(): Image {
        val out = PointerByReference()
        pipeline.callFor(C.sf_job_preview(ptr(), out))
        return Image(out.value)
    }

    /** The seed the job draws its noise from (the one drawn for SEED_RANDOM), as the Long with the
     * same 64 bits (java.lang.Long.toUnsignedString shows it as the library does). */
    val seed: Long get() = C.sf_job_seed(ptr())

    /** The final image as floats in [0, 1] before 8-bit rounding ((x/2 + 0.5) clamped, as diffusers'
     * postprocess), NCHW [3, H, W] or NHWC [H, W, 3]; after finish() (BAD_STATE before). */
    @JvmOverloads
    fun imageF32(layout: Layout = Layout.NCHW): FloatArray {
        val out = FloatArray(C.sf_job_image_count(ptr()).toInt())
        pipeline.callFor(C.sf_job_image_f32(ptr(), layout.code, out, SizeT(out.size.toLong())))
        return out
    }

    /** Runs the remaining steps and decodes; the image is kept in `image`. */
    fun finish(): Image {
        image?.let { return it }
        val out = PointerByReference()
        pipeline.callFor(C.sf_job_finish(ptr(), out))
        return Image(out.value).also { image = it }
    }

    /** Thread-safe: the running or next step throws CancelledException. */
    fun cancel() {
        handle.ptrOrNull()?.let { C.sf_job_cancel(it) }
    }
}

/** PyTorch's CPU generator (randn(n) == torch.randn(n, generator=manual_seed(seed))). */
class Rng @JvmOverloads constructor(seed: Long, scalarKernel: Boolean = false) : NativeObject(create(seed, scalarKernel)) {
    fun randn(n: Int): FloatArray = FloatArray(n).also { check(C.sf_rng_randn(ptr(), it, SizeT(n.toLong()))) }
    fun rand(n: Int): FloatArray = FloatArray(n).also { check(C.sf_rng_rand(ptr(), it, SizeT(n.toLong()))) }
    fun randnF64(n: Int): DoubleArray = DoubleArray(n).also { check(C.sf_rng_randn_f64(ptr(), it, SizeT(n.toLong()))) }

    private companion object {
        fun create(seed: Long, scalar: Boolean): NativeHandle {
            val out = PointerByReference()
            check(C.sf_rng_create(if (scalar) 1 else 0, seed, out))
            return NativeHandle(out.value, { C.sf_rng_destroy(it) }, "rng", null)
        }
    }
}

/** A sampler on its own, for hand-written loops. */
class Schedule @JvmOverloads constructor(sampler: Sampler = Sampler.DEFAULT, configJson: String? = null) :
    NativeObject(create(sampler, configJson)) {
    private var prepared = false

    fun setSteps(steps: Int, latentCount: Int) {
        check(C.sf_schedule_set_steps(ptr(), steps, SizeT(latentCount.toLong())))
        prepared = true
    }
    val evaluations: Int get() = C.sf_schedule_evaluations(ptr())
    fun timestep(i: Int): Double = C.sf_schedule_timestep(ptr(), i)
    val initNoiseSigma: Double get() = C.sf_schedule_init_noise_sigma(ptr())
    fun sigmas(): FloatArray {
        val n = SizeTByReference()
        check(C.sf_schedule_sigmas(ptr(), null, SizeT(0), n))
        return FloatArray(n.value.toInt()).also { check(C.sf_schedule_sigmas(ptr(), it, SizeT(it.size.toLong()), n)) }
    }
    fun scaleInput(i: Int, x: FloatArray): FloatArray =
        FloatArray(x.size).also { check(C.sf_schedule_scale_input(ptr(), i, x, it, SizeT(x.size.toLong()))) }
    fun stepNeedsNoise(i: Int): Boolean = C.sf_schedule_step_needs_noise(ptr(), i) != 0
    /** Updates sample in place. */
    @JvmOverloads
    fun step(i: Int, modelOutput: FloatArray, sample: FloatArray, noise: FloatArray? = null) {
        // One count crosses for the three arrays.
        sameSize("step: model output", modelOutput, sample)
        noise?.let { sameSize("step: noise", it, sample) }
        check(C.sf_schedule_step(ptr(), i, modelOutput, sample, SizeT(sample.size.toLong()), noise))
    }

    /** img2img from the building blocks: after setSteps, the evaluation the loop starts at for
     * strength in [0, 1] (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps); start from
     * addNoise(begin, imageLatents, noise) and step i = begin, begin + 1, ... */
    fun beginIndex(strength: Double): Int {
        if (!prepared) throw SnapFusionException(Status.BAD_STATE, Status.BAD_STATE.code, "beginIndex: call setSteps first")
        val begin = C.sf_schedule_begin_index(ptr(), strength)
        if (begin < 0) throw SnapFusionException(Status.INVALID_ARGUMENT, 1, C.sf_last_error())
        return begin
    }

    /** The scheduler's add_noise(original, noise, timestep of evaluation i); for DDIM
     * sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise with t = timestep(i), acp = alphasCumprod. */
    fun addNoise(i: Int, original: FloatArray, noise: FloatArray): FloatArray {
        sameSize("addNoise: noise", noise, original)
        return FloatArray(original.size).also { check(C.sf_schedule_add_noise(ptr(), i, original, noise, it, SizeT(it.size.toLong()))) }
    }

    /** A table of the training schedule (num_train_timesteps float32 values). */
    fun table(table: ScheduleTable): FloatArray {
        val n = SizeTByReference()
        check(C.sf_schedule_get_table(ptr(), table.code, null, SizeT(0), n))
        return FloatArray(n.value.toInt()).also { check(C.sf_schedule_get_table(ptr(), table.code, it, SizeT(it.size.toLong()), n)) }
    }
    val betas: FloatArray get() = table(ScheduleTable.BETAS)
    val alphasCumprod: FloatArray get() = table(ScheduleTable.ALPHAS_CUMPROD)
    /** 1 with set_alpha_to_one, else alphasCumprod[0]. */
    val finalAlphaCumprod: Double get() = C.sf_schedule_final_alpha_cumprod(ptr())

    private fun sameSize(what: String, a: FloatArray, sample: FloatArray) {
        if (a.size != sample.size)
            throw SnapFusionException(Status.INVALID_ARGUMENT, 1, "$what has ${a.size} values for ${sample.size}")
    }

    private companion object {
        fun create(sampler: Sampler, configJson: String?): NativeHandle {
            val out = PointerByReference()
            check(C.sf_schedule_create(sampler.code, configJson, null, out))
            return NativeHandle(out.value, { C.sf_schedule_destroy(it) }, "schedule", null)
        }
    }
}

object SnapFusion {
    val version: String get() = C.sf_version()
    val abiVersion: Int get() = C.sf_abi_version()
    fun statusString(status: Int): String = C.sf_status_string(status)
    val samplerNames: List<String> get() = Sampler.values().mapNotNull { it.libraryName }
}
