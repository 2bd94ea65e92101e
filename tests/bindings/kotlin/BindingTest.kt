// Tests of the Kotlin (JNA) binding on the tiny-sd fixture model: every result is compared
// with the same computation made by direct calls of the C functions (SfLib), so the
// wrapper adds nothing and loses nothing. Prints "N passed, M failed"; exit 1 on failure.
//   BindingTestKt MODEL_DIR TMP_DIR SNAPFUSION_H
import com.sun.jna.Memory
import com.sun.jna.Native
import com.sun.jna.Pointer
import com.sun.jna.ptr.DoubleByReference
import com.sun.jna.ptr.LongByReference
import com.sun.jna.ptr.PointerByReference
import snapfusion.*
import java.io.File
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.CyclicBarrier
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess

var passed = 0
var failed = 0

fun check(ok: Boolean, what: String) {
    if (ok) passed++ else { failed++; println("FAIL: $what") }
}

inline fun <reified E : Throwable> throws(what: String, block: () -> Unit): E? {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) { passed++; return e }
        failed++; println("FAIL: $what: threw $e"); return null
    }
    failed++; println("FAIL: $what: nothing thrown"); return null
}

/** sf_generate through the raw interface. */
fun rawGenerate(pipe: Pipeline, o: GenerationOptions): ByteArray {
    val c = SfLib.lib
    val p = PointerByReference().also { c.sf_params_create(it) }.value
    c.sf_params_set_string(p, 200, o.prompt)
    c.sf_params_set_string(p, 201, o.negativePrompt)
    c.sf_params_set_int(p, 202, o.width!!.toLong()); c.sf_params_set_int(p, 203, o.height!!.toLong())
    c.sf_params_set_int(p, 204, o.steps!!.toLong()); c.sf_params_set_int(p, 206, o.seed!!)
    c.sf_params_set_float(p, 205, o.guidanceScale!!)
    c.sf_params_set_int(p, 207, o.sampler!!.code.toLong())
    val out = PointerByReference()
    val st = c.sf_generate(pipe.nativePointer, p, null, null, out)
    c.sf_params_destroy(p)
    check(st == 0, "raw sf_generate: ${c.sf_last_error()}")
    val img = out.value
    val w = c.sf_image_width(img); val h = c.sf_image_height(img); val stride = c.sf_image_stride(img).toLong()
    val px = c.sf_image_pixels(img)
    val bytes = ByteArray(w * h * 3)
    for (r in 0 until h) px.read(r * stride, bytes, r * w * 3, w * 3)
    c.sf_image_destroy(img)
    return bytes
}


/** The Java types SfLib may use for a C type of snapfusion.h (JNA's mapping). */
fun javaTypes(ctype: String, enums: Set<String>): Set<Class<*>> {
    val words = ctype.replace("*", " ").split(Regex("\\s+")).filter { it.isNotEmpty() }
    val const = words.contains("const")
    val base = words.filter { it != "const" }.joinToString(" ")
    val stars = ctype.count { it == '*' }
    val int = Int::class.javaPrimitiveType!!
    val long = Long::class.javaPrimitiveType!!
    return when {
        base == "void" && stars == 0 -> setOf(Void.TYPE)
        base == "void" -> setOf(Pointer::class.java)
        base == "char" && stars == 1 -> if (const) setOf(String::class.java) else setOf(ByteArray::class.java)
        base == "char" && stars == 2 -> setOf(PointerByReference::class.java)
        stars == 0 && base in enums -> setOf(int)
        stars == 0 -> when (base) {
            "int", "int32_t", "uint32_t" -> setOf(int)
            "int64_t", "uint64_t" -> setOf(long)
            "size_t" -> setOf(SizeT::class.java)
            "double" -> setOf(Double::class.javaPrimitiveType!!)
            "float" -> setOf(Float::class.javaPrimitiveType!!)
            "sf_log_fn" -> setOf(SfLib.LogFn::class.java)
            "sf_progress_fn" -> setOf(SfLib.ProgressFn::class.java)
            else -> emptySet()
        }
        base.startsWith("sf_") && base !in enums && stars == 1 -> setOf(Pointer::class.java)
        base.startsWith("sf_") && base !in enums && stars == 2 -> setOf(PointerByReference::class.java, Pointer::class.java)
        stars == 1 -> when (base) {
            "float" -> setOf(FloatArray::class.java)
            "double" -> setOf(DoubleArray::class.java, DoubleByReference::class.java)
            "int32_t" -> setOf(IntArray::class.java)
            "uint8_t" -> setOf(ByteArray::class.java, Pointer::class.java)
            "int64_t" -> setOf(LongByReference::class.java)
            "size_t" -> setOf(SizeTByReference::class.java)
            else -> emptySet()
        }
        else -> emptySet()
    }
}

/** Every SF_API function of the header (the deprecated ones included) is declared in SfLib
 * with its argument count and JNA types, and SfLib declares nothing else. */
fun checkDeclarations(headerPath: String) {
    var text = File(headerPath).readText()
    text = text.replace(Regex("/\\*.*?\\*/", RegexOption.DOT_MATCHES_ALL), "")
    val enums = Regex("typedef enum (sf_\\w+)").findAll(text).map { it.groupValues[1] }.toSet()
    text = text.replace(Regex("SF_DEPRECATED\\(\"[^\"]*\"\\)"), "")
    val decls = Regex("^SF_API\\s+([^;()]*?)\\b(sf_\\w+)\\s*\\(([^)]*)\\)\\s*;", RegexOption.MULTILINE).findAll(text).toList()
    check(decls.size > 75, "header functions found: ${decls.size}")
    val methods = SfLib::class.java.methods.associateBy { it.name }
    var bad = 0
    for (d in decls) {
        val (ret, name, args) = d.destructured
        val m = methods[name]
        if (m == null) { bad++; println("FAIL: $name has no SfLib declaration"); continue }
        val params = if (args.trim() == "void" || args.isBlank()) emptyList() else args.split(",").map { it.trim() }
        if (params.size != m.parameterTypes.size) { bad++; println("FAIL: $name: ${m.parameterTypes.size} arguments, C has ${params.size}"); continue }
        if (m.returnType !in javaTypes(ret, enums)) { bad++; println("FAIL: $name returns ${m.returnType}, C: $ret") }
        for ((i, param) in params.withIndex()) {
            val ctype = param.replace(Regex("\\b\\w+$"), "")
            if (m.parameterTypes[i] !in javaTypes(ctype, enums)) { bad++; println("FAIL: $name argument ${i + 1} is ${m.parameterTypes[i]}, C: $param") }
        }
    }
    val extra = methods.keys - decls.map { it.groupValues[2] }
    check(extra.isEmpty(), "SfLib declares functions the header lacks: $extra")
    check(bad == 0, "declarations match the header (${decls.size} functions)")
}

fun f32(x: Double): Float = x.toFloat()

/** Runs each body on its own thread; the Throwables they threw. */
fun runThreads(vararg bodies: () -> Unit): List<Throwable> {
    val errors = Collections.synchronizedList(ArrayList<Throwable>())
    val threads = bodies.map { body -> Thread(ThreadBody(body, errors)).apply { start() } }
    for (t in threads) t.join(300_000)
    if (threads.any { it.isAlive }) errors.add(AssertionError("a thread did not finish"))
    return errors
}

class ThreadBody(val body: () -> Unit, val errors: MutableList<Throwable>) : Runnable {
    override fun run() {
        try { body() } catch (t: Throwable) { errors.add(t) }
    }
}

/** The 1.1 building blocks: sizes, token texts, the encoder. */
fun testBuildingBlocks(pipe: Pipeline) {
    val c = SfLib.lib
    check(pipe.sizeMultiple == 16, "sizeMultiple ${pipe.sizeMultiple}")
    check(pipe.scaleFactor == 8, "scaleFactor ${pipe.scaleFactor}")
    check(pipe.activeRuns == 0, "activeRuns ${pipe.activeRuns}")
    check(pipe.tokenText(2368) == "cat</w>", "tokenText(2368) = ${pipe.tokenText(2368)}")
    val texts = pipe.tokenize("a photo of a cat").take(7).map { pipe.tokenText(it) }
    check(texts == listOf("<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "<|endoftext|>"), "token texts $texts")
    val nf = throws<SnapFusionException>("token outside the vocabulary") { pipe.tokenText(49408) }
    check(nf?.status == Status.NOT_FOUND && nf.message!!.contains("outside the vocabulary"), "tokenText message: ${nf?.message}")

    val text = pipe.encodePrompt("a cat")
    val lat = Rng(3).use { it.randn(256) }
    val expect = listOf(
        "latents_count 250, expected 256" to { pipe.unetPredict(lat.copyOf(250), 1, 8, 8, floatArrayOf(999f), text); Unit },
        "text_count 2463, expected 2432" to { pipe.unetPredict(lat, 1, 8, 8, floatArrayOf(999f), text.copyOf(text.size - 1)); Unit },
        "timesteps_count 2, expected 1" to { pipe.unetPredict(lat, 1, 8, 8, floatArrayOf(999f, 999f), text); Unit },
        "latents_count 255, expected 256" to { pipe.decode(lat.copyOf(255), 1, 8, 8); Unit },
        "image_count 12287, expected 12288" to { pipe.encodeImage(FloatArray(3 * 64 * 64 - 1), 1, 64, 64); Unit })
    for ((message, call) in expect) {
        val e = throws<SnapFusionException>(message) { call() }
        check(e?.status == Status.INVALID_ARGUMENT && e.message!!.contains(message), "size message: ${e?.message} (want $message)")
    }
    // Output capacities, through the raw calls (the wrapper always allocates enough).
    val p = pipe.nativePointer
    val short = FloatArray(255)
    check(c.sf_unet_predict_v2(p, lat, SizeT(256), SizeT(1), SizeT(8), SizeT(8), floatArrayOf(999f), SizeT(1), text,
                               SizeT(text.size.toLong()), SizeT(77), short, SizeT(255)) == 1 &&
          c.sf_last_error().contains("out_capacity 255, 256 needed"), "raw unet capacity: ${c.sf_last_error()}")
    check(c.sf_decode_latents_v2(p, Network.VAE_DECODER.bit, lat, SizeT(256), SizeT(1), SizeT(8), SizeT(8), 0, short, SizeT(255)) == 1 &&
          c.sf_last_error().contains("image_capacity 255, 12288 needed"), "raw decode capacity: ${c.sf_last_error()}")
    val image = FloatArray(3 * 64 * 64) { (it % 64) / 32f - 1f }
    check(c.sf_encode_image_v2(p, Network.VAE_ENCODER.bit, image, SizeT(image.size.toLong()), SizeT(1), SizeT(64), SizeT(64), 0,
                               short, SizeT(255), null, SizeT(0)) == 1 &&
          c.sf_last_error().contains("mean_capacity 255, 256 needed"), "raw encode capacity: ${c.sf_last_error()}")
    // The encoder against the raw call; the decoder's raw flag.
    val enc = pipe.encodeImage(image, 1, 64, 64)
    val mean = FloatArray(256); val logvar = FloatArray(256)
    check(c.sf_encode_image_v2(p, Network.VAE_ENCODER.bit, image, SizeT(image.size.toLong()), SizeT(1), SizeT(64), SizeT(64), 0,
                               mean, SizeT(256), logvar, SizeT(256)) == 0, "raw encode")
    check(enc.mean.contentEquals(mean) && enc.logvar!!.contentEquals(logvar), "encodeImage == raw call")
    check(pipe.decode(enc.mean, 1, 8, 8).size == 3 * 64 * 64, "decode of encoded latents")
}

/** Batches, random seeds and the float image. */
fun testGeneration11(pipe: Pipeline, o: GenerationOptions) {
    val c = SfLib.lib
    val three = o.copy(steps = 3)
    val calls = ArrayList<Int>()
    val images = pipe.txt2imgBatch(three, 3) { s, total -> calls.add(s); check(total == 9, "batch total $total"); false }
    check(images.size == 3 && calls == (1..9).toList(), "batch of 3: ${images.size} images, progress $calls")
    for ((i, img) in images.withIndex()) {
        check(img.seed == three.seed!! + i, "batch image $i seed ${img.seed}")
        pipe.txt2img(three.copy(seed = three.seed!! + i)).use { check(it.pixels.contentEquals(img.pixels), "batch image $i == seed S+$i") }
    }
    val stopped = throws<CancelledException>("stopped batch") { pipe.txt2imgBatch(three, 3) { s, _ -> s >= 4 } }
    check(stopped?.images?.size == 1 && stopped.images[0].pixels.contentEquals(images[0].pixels), "a stopped batch hands back its first image")
    stopped?.images?.forEach { it.close() }
    images.forEach { it.close() }
    val one = throws<SnapFusionException>("txt2img makes one image") { pipe.txt2imgBatch(three, 0) }
    check(one?.status == Status.INVALID_ARGUMENT, "batch of 0: ${one?.message}")
    val outs = Memory(Native.POINTER_SIZE.toLong())
    val made = SizeTByReference()
    val params = PointerByReference().also { c.sf_params_create(it) }.value
    c.sf_params_set_string(params, 200, "x")
    c.sf_params_set_int(params, 210, 2)
    check(c.sf_generate_batch(pipe.nativePointer, params, null, null, outs, SizeT(1), made) == 1 &&
          c.sf_last_error().contains("room for 1 images, 2 asked for"), "raw batch capacity: ${c.sf_last_error()}")
    c.sf_params_destroy(params)

    // Random seeds: the job, the parameters and Image.seed say which; that seed remakes the image.
    val two = o.copy(steps = 2)
    val (drawn, pixels) = pipe.start(two.copy(seed = SEED_RANDOM)).use { job ->
        val img = job.finish()
        check(img.seed == job.seed && img.parameters.contains("Seed: ${java.lang.Long.toUnsignedString(job.seed)},"), "random seed in parameters")
        val px = img.pixels
        img.close()
        Pair(job.seed, px)
    }
    check(drawn >= 0, "drawn seed $drawn")
    pipe.txt2img(two.copy(seed = drawn)).use { check(it.pixels.contentEquals(pixels), "the drawn seed remakes the image") }
    pipe.txt2img(two.copy(seed = SEED_RANDOM)).use { img ->
        check(img.seed != null && img.seed != drawn, "a second draw ${img.seed}")
        pipe.txt2img(two.copy(seed = img.seed)).use { check(it.pixels.contentEquals(img.pixels), "txt2img random seed remakes") }
    }
    pipe.start(two.copy(seed = Long.MIN_VALUE + 5)).use { job -> check(job.seed == Long.MIN_VALUE + 5, "unsigned seed bits") }

    // The float image: NHWC is NCHW transposed, and the pixels are v * 255 (float32) rounded half to even.
    pipe.start(o).use { job ->
        throws<SnapFusionException>("imageF32 before finish") { job.imageF32() }
        val img = job.finish()
        val nchw = job.imageF32(); val nhwc = job.imageF32(Layout.NHWC)
        val hw = img.width * img.height
        var same = nchw.size == 3 * hw && nhwc.size == 3 * hw
        for (i in 0 until hw) for (ch in 0 until 3) if (nhwc[i * 3 + ch] != nchw[ch * hw + i]) same = false
        check(same, "NHWC == NCHW transposed")
        val px = img.pixels
        var rounded = true
        for (k in nhwc.indices) if (Math.rint((nhwc[k] * 255f).toDouble()).toInt() != (px[k].toInt() and 0xff)) rounded = false
        check(rounded, "pixels == round-half-even(float image * 255)")
        val small = FloatArray(3 * hw - 1)
        check(c.sf_job_image_f32(job.nativePointer, 0, small, SizeT(small.size.toLong())) == 1 &&
              c.sf_last_error().contains("${3 * hw - 1} floats given, ${3 * hw} needed"), "raw image_f32 capacity: ${c.sf_last_error()}")
        img.close()
    }
}

/** A DDIM schedule: tables, beginIndex (diffusers' get_timesteps) and addNoise (the formula in float32). */
fun testSchedule(model: String) {
    val config = File("$model/scheduler/scheduler_config.json").readText()
    Schedule(Sampler.DDIM, config).use { s ->
        val betas = s.betas; val acp = s.alphasCumprod
        check(betas.size == 1000 && acp.size == 1000, "tables of ${betas.size}, ${acp.size}")
        check(acp[0] == 1f - betas[0] && acp[1] == acp[0] * (1f - betas[1]), "alphas_cumprod = cumprod(1 - betas)")
        check(s.finalAlphaCumprod == acp[0].toDouble(), "final_alpha_cumprod ${s.finalAlphaCumprod}")
        throws<SnapFusionException>("beginIndex before setSteps") { s.beginIndex(0.5) }
        s.setSteps(8, 256)
        for (strength in listOf(0.125, 0.3, 0.5, 0.6, 0.75, 0.99, 1.0))
            check(s.beginIndex(strength) == 8 - minOf((8 * strength).toInt(), 8), "beginIndex($strength) = ${s.beginIndex(strength)}")
        val none = throws<SnapFusionException>("strength 0.05 leaves no step") { s.beginIndex(0.05) }
        check(none?.message?.contains("strength") == true, "beginIndex message: ${none?.message}")
        check(s.beginIndex(0.6) == 4 && s.timestep(4).toInt() == 376, "img2img start at strength 0.6")
        val x = Rng(1).use { it.randn(256) }; val noise = Rng(2).use { it.randn(256) }
        for (i in 0 until 8) {
            val a = acp[s.timestep(i).toInt()]
            val sa = f32(Math.sqrt(a.toDouble())); val sb = f32(Math.sqrt((1f - a).toDouble()))
            val want = FloatArray(256) { sa * x[it] + sb * noise[it] }
            check(s.addNoise(i, x, noise).contentEquals(want), "addNoise at evaluation $i == sqrt(acp) x + sqrt(1 - acp) noise")
        }
        throws<SnapFusionException>("addNoise with short noise") { s.addNoise(4, x, noise.copyOf(255)) }
        throws<SnapFusionException>("step with short model output") { s.step(4, x.copyOf(10), x.copyOf()) }
    }
}

/** Runs on one pipeline from two threads equal their results alone; errors and log-callback
 * exceptions stay on their own thread. */
fun testThreads(model: String, pipe: Pipeline, o: GenerationOptions) {
    val aOpts = o.copy(steps = 4)
    val bOpts = o.copy(prompt = "a red fox in the snow", seed = 77L, steps = 4)
    val aloneA = pipe.txt2img(aOpts).use { it.pixels }
    val aloneB = pipe.start(bOpts).use { job -> job.finish().use { it.pixels } }
    val barrier = CyclicBarrier(2)
    val runs = Collections.synchronizedList(ArrayList<Int>())
    val got = ConcurrentHashMap<String, ByteArray>()
    var errors = runThreads({
        got["a"] = pipe.txt2img(aOpts) { s, _ -> if (s == 1) barrier.await(120, TimeUnit.SECONDS); runs.add(pipe.activeRuns); false }.use { it.pixels }
    }, {
        pipe.start(bOpts).use { job ->
            for (step in pipe.steps(job)) {
                if (step.index == 1) barrier.await(120, TimeUnit.SECONDS)
                runs.add(pipe.activeRuns)
            }
            got["b"] = job.image!!.use { it.pixels }
        }
    })
    check(errors.isEmpty(), "concurrent runs: $errors")
    check(got["a"]?.contentEquals(aloneA) == true && got["b"]?.contentEquals(aloneB) == true, "concurrent runs equal runs alone")
    check((runs.max() ?: 0) >= 2 && pipe.activeRuns == 0, "active runs seen: $runs")

    // Failing calls on two threads at once: each exception has its own thread's message. The
    // library calls the log function inside the failing call, after storing the message (per
    // thread, and in the context's shared slot); both threads wait there for each other, so the
    // context's slot holds the other thread's message for one of them when the calls return.
    val failed = CyclicBarrier(2)
    // A log callback throws at both warnings of one call on thread "long"; at the second it waits
    // while thread "short" makes a whole call on the same context, which must not see it.
    val warnings = Collections.synchronizedList(ArrayList<String>())
    val kept = CountDownLatch(1)
    val shortDone = CountDownLatch(1)
    val ctx = Context(threads = 1, log = { level, msg ->
        if (level == LogLevel.ERROR && msg.contains("must be multiples")) failed.await(60, TimeUnit.SECONDS)
        if (msg.contains("prompt truncated")) {
            warnings.add(msg)
            if (warnings.size == 2) { kept.countDown(); shortDone.await(60, TimeUnit.SECONDS) }
            throw IllegalStateException("log callback: $msg")
        }
    })
    val p2 = Pipeline.load(model, context = ctx)
    fun failing(w: Int, h: Int): () -> Unit = {
        for (r in 0 until 10) {
            var msg: String? = null
            try {
                p2.txt2img(GenerationOptions("x", width = w, height = h, steps = 1)).close()
            } catch (e: SnapFusionException) {
                msg = e.message
            }
            if (msg == null || !msg.contains("size ${w}x$h")) throw AssertionError("${w}x$h got: $msg")
        }
    }
    errors = runThreads(failing(48, 40), failing(24, 72))
    check(errors.isEmpty(), "per-thread error messages: $errors")

    errors = runThreads({
        var thrown: Throwable? = null
        try { p2.txt2img(GenerationOptions("word ".repeat(100), "word ".repeat(90), steps = 1)).close() } catch (t: Throwable) { thrown = t }
        if (thrown !is IllegalStateException || !thrown.message!!.contains("102 tokens")) throw AssertionError("long call threw $thrown")
    }, {
        try {
            if (!kept.await(60, TimeUnit.SECONDS)) throw AssertionError("no second warning")
            p2.tokenize("a photo of a cat")
        } finally {
            shortDone.countDown()
        }
    })
    check(errors.isEmpty() && warnings.size == 2, "log-callback exceptions per thread: $errors, warnings $warnings")
    p2.close()
    ctx.close()
}

/** A pipeline loaded from lent direct buffers, one holding junk before the file (the position is
 * honoured), the UNet a read-only MappedByteBuffer; once this returns only the binding keeps them
 * reachable (weak: references to them). */
fun loadLent(model: String, bytes: Map<String, ByteArray>, unetPath: String,
             weak: MutableList<java.lang.ref.WeakReference<java.nio.ByteBuffer>>, live0: Int): Pipeline {
    val files = Files()
    for ((path, data) in bytes) {
        val buf = java.nio.ByteBuffer.allocateDirect(data.size + 5)
        buf.put(ByteArray(5) { 0x55 }).put(data).flip()
        buf.position(5)
        files.add(path, buf)
        weak.add(java.lang.ref.WeakReference(buf))
    }
    val mapped = java.io.RandomAccessFile("$model/$unetPath", "r").use { f ->
        f.channel.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, f.length())
    }
    files.add(unetPath, mapped)
    weak.add(java.lang.ref.WeakReference(mapped))
    check(files.borrowed && files.size == bytes.size, "lent set")
    val heap = throws<SnapFusionException>("a heap buffer cannot be lent") { files.add("x.bin", java.nio.ByteBuffer.wrap(byteArrayOf(1))) }
    check(heap?.status == Status.INVALID_ARGUMENT && heap.message!!.contains("x.bin"), "heap buffer: ${heap?.message}")
    val p = Pipeline.loadFiles(files, threads = 1)
    files.close()
    check(NativeHandle.live.get() == live0 + 3, "a lent set lives on with its pipeline (live ${NativeHandle.live.get() - live0})")
    return p
}

/** The model from memory (Files, Pipeline.loadFiles): the folder's image bit for bit from copied
 * files and from lent direct buffers (a MappedByteBuffer among them), the lifetimes of both, and
 * the failures naming the file. */
fun testFiles(model: String) {
    val o = GenerationOptions(prompt = "a photo of an astronaut riding a horse on mars", negativePrompt = "blurry",
                              width = 64, height = 64, steps = 2, seed = 7L, sampler = Sampler.DDIM)
    val root = File(model)
    val bytes = root.walkTopDown().filter { it.isFile }.associate { it.relativeTo(root).invariantSeparatorsPath to it.readBytes() }
    check(bytes.size >= 10 && bytes.containsKey("model_index.json"), "fixture files: ${bytes.keys}")
    val unetPath = "unet/diffusion_pytorch_model.safetensors"
    val (ref, refEmb) = Pipeline.load(model, threads = 1).use { p -> Pair(p.txt2img(o).use { it.pixels }, p.encodePrompt("a photo of a cat")) }
    val live0 = NativeHandle.live.get()

    // Copied (fromFolder, fromMap): the set may be closed right after loading.
    for (make in listOf({ Files.fromFolder(model) }, { Files.fromMap(bytes) })) {
        val files = make()
        check(files.paths == bytes.keys.sorted() && files.size == bytes.size && !files.borrowed, "copied set: ${files.paths}")
        val pipe = Pipeline.loadFiles(files, threads = 1)
        files.close()
        check(NativeHandle.live.get() == live0 + 2, "a copied set is destroyed at close (live ${NativeHandle.live.get() - live0})")
        val closed = throws<SnapFusionException>("add to a closed set") { files.add("x.txt", byteArrayOf(1)) }
        check(closed?.status == Status.BAD_STATE, "closed set: ${closed?.message}")
        throws<SnapFusionException>("load from a closed set") { Pipeline.loadFiles(files, threads = 1) }
        pipe.use { p ->
            p.txt2img(o).use { check(it.pixels.contentEquals(ref), "copied set: the folder's image") }
            check(p.encodePrompt("a photo of a cat").contentEquals(refEmb), "copied set: prompt embeddings")
            check(p.describe().startsWith("model: memory\n"), "describe names memory")
        }
    }
    check(NativeHandle.live.get() == live0, "copied sets freed (live ${NativeHandle.live.get() - live0})")

    // Lent direct buffers, reachable only through the binding.
    val weak = ArrayList<java.lang.ref.WeakReference<java.nio.ByteBuffer>>()
    val pipe = loadLent(model, bytes, unetPath, weak, live0)
    for (i in 0 until 5) { System.gc(); Thread.sleep(10) }
    check(weak.all { it.get() != null }, "the lent buffers stay reachable from the pipeline")
    pipe.txt2img(o).use { check(it.pixels.contentEquals(ref), "lent buffers: the folder's image") }
    check(pipe.encodePrompt("a photo of a cat").contentEquals(refEmb), "lent buffers: prompt embeddings")
    pipe.close()
    check(NativeHandle.live.get() == live0, "lent set freed with its pipeline (live ${NativeHandle.live.get() - live0})")
    var tries = 0
    while (weak.any { it.get() != null } && tries++ < 100) { System.gc(); Thread.sleep(20) }
    check(weak.all { it.get() == null }, "the lent buffers are released after the pipeline and the set")

    // Failures name the file.
    Files().use { files ->
        for (bad in listOf("../x", "/abs", "a//b", "a\\b")) {
            val e = throws<SnapFusionException>("bad path $bad") { files.add(bad, byteArrayOf(1)) }
            check(e?.status == Status.INVALID_ARGUMENT && e.message!!.contains("\"$bad\""), "bad path message: ${e?.message}")
        }
        check(files.size == 0, "nothing added")
        files.add("readme.txt", byteArrayOf())
        val e = throws<SnapFusionException>("no model_index.json") { Pipeline.loadFiles(files, threads = 1) }
        check(e?.status == Status.IO && e.message!!.contains("memory:model_index.json"), "missing model_index.json: ${e?.message}")
    }
    Files.fromMap(bytes - "model_index.json").use { files ->
        val e = throws<SnapFusionException>("no model_index.json") { Pipeline.loadFiles(files, threads = 1) }
        check(e?.status == Status.IO && e.message!!.contains("memory:model_index.json is missing"), "missing model_index.json: ${e?.message}")
    }
    val unet = bytes.getValue(unetPath)
    Files.fromMap(bytes + (unetPath to unet.copyOf(unet.size / 2))).use { files ->
        val e = throws<SnapFusionException>("truncated safetensors") { Pipeline.loadFiles(files, threads = 1) }
        check(e?.status == Status.BAD_MODEL && e.message!!.contains("memory:$unetPath"), "truncated safetensors: ${e?.message}")
    }
    val nf = throws<SnapFusionException>("fromFolder of no folder") { Files.fromFolder("$model-missing") }
    check(nf?.status == Status.IO && nf.message!!.contains("-missing"), "fromFolder message: ${nf?.message}")
    // The options of load: components.
    Files.fromMap(bytes).use { files ->
        Pipeline.loadFiles(files, threads = 1, components = setOf(Network.TEXT_ENCODER)).use { p ->
            check(p.networks == setOf(Network.TEXT_ENCODER), "loadFiles components: ${p.networks}")
            check(p.encodePrompt("a photo of a cat").contentEquals(refEmb), "text encoder alone from memory")
        }
    }
    check(NativeHandle.live.get() == live0, "all sets freed (live ${NativeHandle.live.get() - live0})")
}

/** The 1.1 memory options: Pipeline.load(weights = WeightType, lowMemory = true) and
 * Pipeline.weightBytes (SF_PARAM_WEIGHT_TYPE, SF_PARAM_LOW_MEMORY, SF_INFO_WEIGHT_BYTES) on
 * tiny-sd, an f32 checkpoint. */
fun testMemoryOptions(model: String, tmpDir: String, headerPath: String) {
    // WeightType mirrors sf_weight_type.
    val header = File(headerPath).readText()
    val members = Regex("\\bSF_WEIGHT_(\\w+)\\s*=\\s*(\\d+)").findAll(header).map { it.groupValues[1] to it.groupValues[2].toInt() }.toList()
    check(members.size == 4 && members.all { (n, v) -> WeightType.valueOf(n).code == v } && WeightType.values().size == 4,
          "WeightType == sf_weight_type $members")
    check(WeightType.fromName("q8") == WeightType.Q8 && WeightType.fromName("F16") == WeightType.F16 &&
          WeightType.F32.typeName == "f32", "WeightType names")

    val o = GenerationOptions(prompt = "a photo of an astronaut riding a horse", negativePrompt = "blurry", steps = 2,
                              guidanceScale = 7.5, seed = 5L, sampler = Sampler.DDIM)
    val bytes = HashMap<WeightType?, Long>()
    val images = HashMap<WeightType?, ByteArray>()
    for (w in listOf(null, WeightType.F32, WeightType.F16, WeightType.Q8)) {
        Pipeline.load(model, threads = 1, weights = w).use { pipe ->
            bytes[w] = pipe.weightBytes
            pipe.txt2img(o).use { images[w] = it.pixels; check(it.width == 64 && it.height == 64, "2-step image with $w") }
        }
    }
    val f32 = bytes[WeightType.F32]!!; val f16 = bytes[WeightType.F16]!!; val q8 = bytes[WeightType.Q8]!!
    check(f32 > f16 && f16 > q8 && q8 > 0, "weightBytes f32 $f32 > f16 $f16 > q8 $q8")
    check(f16 < 0.6 * f32 && q8 < 0.8 * f16, "f16 nearly halves, q8 shrinks again: $f32 $f16 $q8")
    check(bytes[null] == f32, "default == f32 on an f32 checkpoint: ${bytes[null]} $f32")
    val ref = images[null]!!
    check(images[WeightType.F32]!!.contentEquals(ref), "weights = F32 makes the default image bit for bit")
    for ((w, bound) in listOf(WeightType.F16 to 0.5, WeightType.Q8 to 4.0)) {  // measured: 0.05, 0.8
        val img = images[w]!!
        val meanDiff = img.indices.sumByDouble { Math.abs((img[it].toInt() and 255) - (ref[it].toInt() and 255)).toDouble() } / img.size
        check(meanDiff < bound, "$w image close to f32: mean |diff| $meanDiff")
    }

    // Low memory: nothing packed at load, the same images, one network resident after a run.
    Pipeline.load(model, threads = 1, lowMemory = true).use { pipe ->
        val afterLoad = pipe.weightBytes
        check(afterLoad < f32 / 4, "lowMemory weightBytes after load $afterLoad << $f32")
        pipe.txt2img(o).use { check(it.pixels.contentEquals(ref), "lowMemory image == normal image") }
        check(pipe.weightBytes < f32, "lowMemory: one network resident after a run (${pipe.weightBytes})")
        pipe.start(o).use { job ->
            check(pipe.steps(job).count() == 2, "lowMemory steps")
            check(job.image!!.pixels.contentEquals(ref), "lowMemory step-wise == normal image")
            job.image!!.close()
        }
    }
    val emb = Pipeline.load(model, threads = 1, components = setOf(Network.TEXT_ENCODER)).use { it.encodePrompt("a red fox") }
    Pipeline.load(model, threads = 1, lowMemory = true).use { pipe ->
        check(pipe.encodePrompt("a red fox").contentEquals(emb), "lowMemory building blocks == normal")
    }
    Pipeline.load(model, threads = 1, lowMemory = true, weights = WeightType.Q8).use { pipe ->
        pipe.txt2img(o).use { check(it.pixels.contentEquals(images[WeightType.Q8]!!), "lowMemory + Q8 == Q8 image") }
    }
    Files.fromFolder(model).use { files ->
        Pipeline.loadFiles(files, threads = 1, weights = WeightType.Q8).use { pipe ->
            check(pipe.weightBytes == q8, "loadFiles(weights = Q8) bytes")
            pipe.txt2img(o).use { check(it.pixels.contentEquals(images[WeightType.Q8]!!), "loadFiles Q8 image") }
        }
        Pipeline.loadFiles(files, threads = 1, lowMemory = true).use { pipe ->
            check(pipe.weightBytes < f32 / 4, "loadFiles(lowMemory = true) bytes after load")
            pipe.txt2img(o).use { check(it.pixels.contentEquals(ref), "loadFiles lowMemory image") }
        }
    }

    // The example's --weights q8 --low-memory (run.sh ran it before this program, if it did).
    val example = File(tmpDir, "example-q8.png")
    if (example.exists()) {
        Pipeline.load(model, threads = 1, weights = WeightType.Q8).use { pipe ->
            val want = pipe.txt2img(GenerationOptions(prompt = "a red fox", steps = 2, seed = 5L, guidanceScale = 7.5))
            Image.open(example.path).use { check(it.pixels.contentEquals(want.pixels), "Txt2ImgKt --weights q8 --low-memory image") }
            want.close()
        }
    }

    // An invalid weight type is refused: by name in the binding, by number in the library.
    val bad = throws<SnapFusionException>("unknown weight type name") { Pipeline.load(model, threads = 1, weights = WeightType.fromName("q4")) }
    check(bad?.status == Status.INVALID_ARGUMENT && bad.message!!.contains("q4") && bad.message!!.contains("f16"),
          "unknown weight type message: ${bad?.message}")
    val c = SfLib.lib
    val ctx = PointerByReference().also { c.sf_context_create(it) }.value
    val p = PointerByReference().also { c.sf_params_create(it) }.value
    check(c.sf_params_set_int(p, 107, 9) == 0, "SF_PARAM_WEIGHT_TYPE is an int key")
    val out = PointerByReference()
    val st = c.sf_pipeline_load(ctx, model, p, out)
    check(st == Status.INVALID_ARGUMENT.code && c.sf_last_error().contains("SF_PARAM_WEIGHT_TYPE"),
          "the library refuses weight type 9: $st ${c.sf_last_error()}")
    c.sf_params_destroy(p)
    c.sf_context_destroy(ctx)
}

/** A copy of the model with three problems: unet/config.json without "block_out_channels", and the
 * VAE's tensor decoder.conv_in.bias renamed decoder.conv_in.biaz (missing + left over). */
fun brokenCopy(model: String, tmpDir: String): String {
    val src = java.nio.file.Paths.get(model)
    val dst = java.nio.file.Paths.get(tmpDir, "broken-tiny-sd")
    if (java.nio.file.Files.exists(dst)) dst.toFile().deleteRecursively()
    val walk = java.nio.file.Files.walk(src)
    try {
        for (f in walk.toArray()) {
            val from = f as java.nio.file.Path
            val to = dst.resolve(src.relativize(from).toString())
            if (java.nio.file.Files.isDirectory(from)) java.nio.file.Files.createDirectories(to)
            else java.nio.file.Files.copy(from, to)
        }
    } finally {
        walk.close()
    }
    val config = dst.resolve("unet/config.json").toFile()
    val edited = config.readText().replace(Regex("\"block_out_channels\"\\s*:\\s*\\[[^\\]]*\\]\\s*,"), "")
    check(edited != config.readText(), "block_out_channels removed from the copy's unet/config.json")
    config.writeText(edited)
    val vae = dst.resolve("vae/diffusion_pytorch_model.safetensors").toFile()
    val bytes = vae.readBytes()
    val name = "\"decoder.conv_in.bias\"".toByteArray()
    val at = (8 until bytes.size - name.size).first { i -> name.indices.all { bytes[i + it] == name[it] } }
    bytes[at + name.size - 2] = 'z'.toByte()  // same length: the header stays valid
    vae.writeBytes(bytes)
    return dst.toString()
}

/** Pipeline.inspect / inspectFiles (SF_PARAM_INSPECT_ONLY), estimateMemory
 * (sf_pipeline_estimate_memory), weightType (SF_INFO_WEIGHT_TYPE) and arenaBytes on tiny-sd. */
fun testInspectAndEstimate(model: String, tmpDir: String, headerPath: String) {
    val header = File(headerPath).readText()
    val figures = Regex("\\bSF_MEMORY_(\\w+)\\s*=\\s*(\\d+)").findAll(header).map { it.groupValues[1] to it.groupValues[2].toInt() }.toList()
    check(figures.size == 6 && figures.all { (n, v) -> MemoryFigure.valueOf(n).code == v } && MemoryFigure.values().size == 6,
          "MemoryFigure == sf_memory $figures")
    val gen = GenerationOptions(width = 64, height = 64, guidanceScale = 7.5)
    val live0 = NativeHandle.live.get()

    // An inspected pipeline tells what the load with the same options has; the estimates are equal.
    for ((w, want) in listOf(null to WeightType.F32, WeightType.F32 to WeightType.F32, WeightType.F16 to WeightType.F16,
                             WeightType.Q8 to WeightType.Q8)) {
        Pipeline.inspect(model, threads = 1, weights = w).use { probe ->
            Pipeline.load(model, threads = 1, weights = w).use { full ->
                check(probe.isInspectOnly && !full.isInspectOnly, "isInspectOnly")
                check(probe.networks.isEmpty(), "an inspected pipeline has no network: ${probe.networks}")
                check(probe.weightType == want && full.weightType == want, "weightType $w: ${probe.weightType} ${full.weightType}")
                check(probe.weightBytes == full.weightBytes && probe.parameterCount == full.parameterCount,
                      "inspect == load: weight bytes ${probe.weightBytes} ${full.weightBytes}, parameters")
                check(probe.sizeMultiple == full.sizeMultiple && probe.defaultWidth == full.defaultWidth &&
                      probe.latentChannels == full.latentChannels, "inspect == load: shapes")
                for (o in listOf(gen, GenerationOptions(width = 32, height = 48, guidanceScale = 1.0), GenerationOptions())) {
                    val e = probe.estimateMemory(o)
                    check(full.estimateMemory(o) == e, "estimate on inspect == on load ($w, $o): $e ${full.estimateMemory(o)}")
                    check(e.peak == e.weights + e.workspace + e.other && e[MemoryFigure.PEAK] == e.peak &&
                          e[MemoryFigure.WORKSPACE_RUN] == e.workspaceRun, "peak = weights + workspace + other: $e")
                    check(e.weightsTotal == full.weightBytes && e.peak > e.weightsTotal, "weightsTotal = weightBytes: $e")
                }
            }
        }
    }
    Pipeline.load(model, threads = 1, inspectOnly = true).use { p ->
        check(p.isInspectOnly && p.estimateMemory(gen) == Pipeline.inspect(model, threads = 1).use { it.estimateMemory(gen) },
              "load(inspectOnly = true) == inspect")
    }
    // workspaceRun: the arena a generation with the same size and guidance then holds.
    for (o in listOf(gen, GenerationOptions(width = 32, height = 48, guidanceScale = 1.0), GenerationOptions(width = 96, height = 96))) {
        val e = Pipeline.inspect(model, threads = 1).use { it.estimateMemory(o) }
        Pipeline.load(model, threads = 1).use { full ->
            check(full.arenaBytes == 0L, "no arena before a run")
            full.txt2img(o.copy(prompt = "a red fox", steps = 2, seed = 1L)).close()
            check(full.arenaBytes == e.workspaceRun, "workspaceRun ${e.workspaceRun} == arenaBytes ${full.arenaBytes} ($o)")
        }
    }
    // Weight types, low memory, bigger images, the batch count.
    val est = listOf(WeightType.F32, WeightType.F16, WeightType.Q8).associate { w ->
        w to Pipeline.inspect(model, threads = 1, weights = w).use { it.estimateMemory(gen) }
    }
    check(est.getValue(WeightType.F32).weightsTotal > est.getValue(WeightType.F16).weightsTotal &&
          est.getValue(WeightType.F16).weightsTotal > est.getValue(WeightType.Q8).weightsTotal, "weightsTotal f32 > f16 > q8")
    Pipeline.inspect(model, threads = 1, lowMemory = true).use { low ->
        val lo = low.estimateMemory(gen)
        val f32 = est.getValue(WeightType.F32)
        check(lo.peak < f32.peak && lo.weights < f32.weights && lo.weightsTotal == f32.weightsTotal, "lowMemory lowers the peak: $lo vs $f32")
    }
    Pipeline.inspect(model, threads = 1).use { probe ->
        check(probe.estimateMemory(GenerationOptions(width = 256, height = 256)).workspaceRun > probe.estimateMemory(gen).workspaceRun,
              "a bigger image needs more workspace")
        check(probe.estimateMemory(GenerationOptions(guidanceScale = 7.5)) == probe.estimateMemory(gen), "default size 64x64")
        check(probe.estimateMemory(gen, batchCount = 2).peak > 0, "a batch's estimate")
        val odd = throws<SnapFusionException>("estimate of 72x64") { probe.estimateMemory(GenerationOptions(width = 72, height = 64)) }
        check(odd?.status == Status.INVALID_ARGUMENT, "72x64: ${odd?.message}")
        // Runs are refused with a message that says why.
        for ((what, run) in listOf<Pair<String, () -> Unit>>(
                "txt2img" to { probe.txt2img(GenerationOptions("a cat", steps = 1)).close() },
                "start" to { probe.start(GenerationOptions("a cat", steps = 1)).close() },
                "encodePrompt" to { probe.encodePrompt("a cat"); Unit })) {
            val e = throws<SnapFusionException>("$what on an inspected pipeline") { run() }
            check(e?.status == Status.BAD_STATE && e.message!!.contains("SF_PARAM_INSPECT_ONLY"), "$what refused: ${e?.message}")
        }
        val raw = SfLib.lib.sf_pipeline_estimate_memory(probe.nativePointer, null, 99, LongByReference())
        check(raw == Status.INVALID_ARGUMENT.code && SfLib.lib.sf_last_error().contains("99"), "raw estimate of figure 99: ${SfLib.lib.sf_last_error()}")
    }
    Pipeline.inspect(model, threads = 1, components = setOf(Network.TEXT_ENCODER)).use { probe ->
        val e = throws<SnapFusionException>("estimate without a UNet") { probe.estimateMemory() }
        check(e?.status == Status.BAD_STATE, "no UNet: ${e?.message}")
        throws<SnapFusionException>("weightType without a UNet") { probe.weightType }
    }
    Pipeline.inspect(model, threads = 1, variant = "fp16").use { check(it.weightType == WeightType.F16, "fp16 variant: ${it.weightType}") }

    // SD-1.5's architecture (config-only folder, random weights): peaks f32 > f16 > q8.
    val sd15 = File(model).absoluteFile.parentFile.parentFile.parentFile.resolve("configs/sd-v1-5")
    if (File(sd15, "model_index.json").exists()) {
        val peaks = listOf(WeightType.F32, WeightType.F16, WeightType.Q8).map { w ->
            Pipeline.inspect(sd15.path, threads = 1, randomWeights = true, weights = w,
                             tokenizerPath = File(model).absoluteFile.parentFile.resolve("tokenizer").path).use {
                it.estimateMemory(GenerationOptions(guidanceScale = 7.5)).peak
            }
        }
        check(peaks[0] > peaks[1] && peaks[1] > peaks[2], "SD-1.5 peaks f32 > f16 > q8: $peaks")
    } else {
        println("note: $sd15 not found, SD-1.5 peaks not checked")
    }

    // A broken folder: every problem in exception.problems; a full load stops at the first.
    val broken = brokenCopy(model, tmpDir)
    val e = throws<SnapFusionException>("inspect of a broken folder") { Pipeline.inspect(broken, threads = 1) }
    val problems = e?.problems ?: emptyList()
    check(e?.status == Status.BAD_MODEL && e.message!!.startsWith("3 problems: ") && problems.size == 3, "problems: ${e?.message} $problems")
    check(problems.size == 3 && problems[0].contains("unet/config.json") && problems[0].contains("block_out_channels") &&
          problems.any { it.contains("'decoder.conv_in.bias'") } && problems.any { it.contains("'decoder.conv_in.biaz'") },
          "the three problems: $problems")
    val full = throws<SnapFusionException>("load of a broken folder") { Pipeline.load(broken, threads = 1) }
    check(full?.status == Status.BAD_MODEL && full.message in problems && full.problems.isEmpty(), "full load: ${full?.message} ${full?.problems}")
    val logged = Collections.synchronizedList(ArrayList<String>())
    Context(threads = 1, log = { level, msg -> if (level == LogLevel.ERROR) logged.add(msg) }).use { ctx ->
        val e2 = throws<SnapFusionException>("inspect with a log") { Pipeline.inspect(broken, context = ctx) }
        check(e2?.problems == problems, "problems with a log function: ${e2?.problems}")
        check(problems.all { it in logged }, "the log function saw each problem: $logged")
        Pipeline.inspect(model, context = ctx).use { check(it.weightType == WeightType.F32, "the context goes on") }
    }
    Files.fromFolder(broken).use { files ->
        val e3 = throws<SnapFusionException>("inspectFiles of a broken set") { Pipeline.inspectFiles(files, threads = 1) }
        check(e3?.problems?.size == 3 && e3.problems[0].contains("memory:unet/config.json"), "inspectFiles problems: ${e3?.problems}")
    }
    Files.fromFolder(model).use { files ->
        Pipeline.inspectFiles(files, threads = 1, weights = WeightType.Q8).use {
            check(it.isInspectOnly && it.weightBytes == est.getValue(WeightType.Q8).weightsTotal, "inspectFiles of tiny-sd")
        }
    }
    check(NativeHandle.live.get() == live0, "inspect: all native objects closed (live ${NativeHandle.live.get() - live0})")
}

/** Pipeline.load(loras = listOf(path to scale)) (SF_PARAM_LORAS) on the model-format fixture set
 * (beside the public set; its lora/ cases name the base folder and the LoRA files): scale 0 is the
 * base model bit for bit, a LoRA changes the text encoder, bad lists and files are refused. */
fun testLoras(model: String) {
    val models = File(File(model).absoluteFile.parentFile.parentFile, "models")
    val manifest = File(models, "manifest.json")
    if (!manifest.exists()) { println("testLoras: SKIPPED (no $manifest)"); return }
    val text = manifest.readText()
    val base = Regex("\"model\": \"([^\"/ ]+)[^\"]* \\+ LoRA").find(text)?.groupValues?.get(1)
    val lora = Regex("\"file\": \"(lora/[^\"]+\\.safetensors)\"").find(text)?.groupValues?.get(1)
    check(base != null && lora != null, "the model-format manifest names a LoRA case")
    val dir = File(models, base!!).path
    val path = File(models, lora!!).path
    val plain = Pipeline.load(dir, threads = 1, components = setOf(Network.TEXT_ENCODER)).use { it.encodePrompt("a red fox") }
    val zero = Pipeline.load(dir, threads = 1, components = setOf(Network.TEXT_ENCODER), loras = listOf(path to 0.0)).use {
        it.encodePrompt("a red fox")
    }
    check(zero.contentEquals(plain), "LoRA at scale 0 == the base model")
    val merged = Pipeline.load(dir, threads = 1, components = setOf(Network.TEXT_ENCODER), loras = listOf(path to 0.75)).use {
        it.encodePrompt("a red fox")
    }
    check(!merged.contentEquals(plain), "a LoRA changes the text encoder")
    val nan = throws<SnapFusionException>("NaN scale") { Pipeline.load(dir, threads = 1, loras = listOf(path to Double.NaN)) }
    check(nan?.status == Status.INVALID_ARGUMENT, "NaN scale: ${nan?.message}")
    val missing = throws<SnapFusionException>("missing LoRA") { Pipeline.load(dir, threads = 1, loras = listOf("$path-missing" to 1.0)) }
    check(missing?.message?.contains("-missing") == true, "missing LoRA message: ${missing?.message}")
    Pipeline.inspect(dir, threads = 1, loras = listOf(path to 0.5)).use { check(it.isInspectOnly, "inspect with a LoRA") }
}

/** SF_PARAM_PROMPT_SYNTAX through GenerationOptions.promptSyntax. */
fun testPromptSyntax(model: String) {
    Pipeline.load(model, threads = 1).use { pipe ->
        val o = GenerationOptions(prompt = "a red fox", negativePrompt = "blurry", steps = 1, seed = 3L)
        val plain = pipe.txt2img(o).use { it.pixels }
        val same = pipe.txt2img(o.copy(promptSyntax = PromptSyntax.A1111)).use { it.pixels }
        check(same.contentEquals(plain), "A1111 syntax without brackets == plain")
        val weighted = pipe.txt2img(o.copy(prompt = "a (red:1.6) fox", promptSyntax = PromptSyntax.A1111)).use { it.pixels }
        check(!weighted.contentEquals(plain), "a weight changes the image")
        val bad = throws<SnapFusionException>("malformed weight") {
            pipe.txt2img(o.copy(prompt = "(fox:1.2.3)", promptSyntax = PromptSyntax.A1111))
        }
        check(bad?.status == Status.INVALID_ARGUMENT, "malformed weight: ${bad?.message}")
    }
}

fun main(args: Array<String>) {
    val model = args[0]
    val tmp = args[1]
    checkDeclarations(args[2])
    testLoras(model)
    testPromptSyntax(model)
    check(SnapFusion.abiVersion == 1, "abi version")
    check(SnapFusion.samplerNames.contains("ddim"), "sampler names ${SnapFusion.samplerNames}")

    // Context: errors carry the library's message, the log callback sees them, and an
    // exception thrown by the callback comes back after the call.
    val logged = ArrayList<String>()
    Context(threads = 1, log = { level, msg -> logged.add("$level $msg") }).use { ctx ->
        val e = throws<SnapFusionException>("bad log level") { ctx.setLogLevelRaw(99) }
        check(e?.status == Status.INVALID_ARGUMENT && e.message!!.contains("log level"), "message: ${e?.message}")
        check(logged.size == 1 && logged[0].startsWith("ERROR") && logged[0].contains("log level"), "log: $logged")
        check(ctx.threads == 1, "threads")
    }
    Context(log = { _, _ -> throw IllegalStateException("from callback") }).use { ctx ->
        throws<IllegalStateException>("callback exception rethrown") { ctx.setLogLevelRaw(99) }
        ctx.threads = 1
        check(ctx.threads == 1, "context usable after a throwing callback")
    }
    val missing = throws<SnapFusionException>("missing model") { Pipeline.load("$model-missing", threads = 1) }
    check(missing?.message?.contains("-missing") == true, "missing model message: ${missing?.message}")

    val live0 = NativeHandle.live.get()
    Pipeline.load(model, threads = 1).use { pipe ->
        check(pipe.textTokens == 77 && pipe.latentChannels == 4, "pipeline info")
        check(pipe.networks.contains(Network.UNET), "networks ${pipe.networks}")
        check(pipe.describe().contains("StableDiffusionPipeline"), "describe")
        check(pipe.describe(json = true).trimStart().startsWith("{"), "describe json")

        val ids = pipe.tokenize("a photo of an astronaut riding a horse on mars")
        check(ids[0] == 49406 && ids.size == 77, "tokenize")
        val emb = pipe.encodePrompt("a photo of an astronaut riding a horse on mars")
        check(emb.contentEquals(pipe.encodeIds(ids, 1)), "encodePrompt == encodeIds(tokenize)")

        // UNet and decoder against direct calls.
        val lat = Rng(5).use { it.randn(2 * 4 * 8 * 8) }
        val text = pipe.encodeIds(ids + pipe.tokenize(""), 2)
        val ts = floatArrayOf(999f, 500f)
        val eps = pipe.unetPredict(lat, 2, 8, 8, ts, text)
        val rawEps = FloatArray(lat.size)
        check(SfLib.lib.sf_unet_predict_v2(pipe.nativePointer, lat, SizeT(lat.size.toLong()), SizeT(2), SizeT(8), SizeT(8), ts,
                                           SizeT(2), text, SizeT(text.size.toLong()), SizeT(77), rawEps,
                                           SizeT(rawEps.size.toLong())) == 0, "raw unet")
        check(eps.contentEquals(rawEps), "unet == raw call")
        val oldEps = FloatArray(lat.size)  // the deprecated version 1: declared, never used by the wrapper
        @Suppress("DEPRECATION")
        val oldStatus = SfLib.lib.sf_unet_predict(pipe.nativePointer, lat, SizeT(2), SizeT(8), SizeT(8), ts, text, SizeT(77), oldEps)
        check(oldStatus == 0 && oldEps.contentEquals(eps), "deprecated sf_unet_predict == v2")
        val img = pipe.decode(lat, 2, 8, 8)
        check(img.size == 2 * 3 * 64 * 64 && img.any { it != 0f }, "decode")
        val rawImg = FloatArray(img.size)
        check(SfLib.lib.sf_decode_latents_v2(pipe.nativePointer, Network.VAE_DECODER.bit, lat, SizeT(lat.size.toLong()), SizeT(2),
                                             SizeT(8), SizeT(8), 0, rawImg, SizeT(rawImg.size.toLong())) == 0 &&
              rawImg.contentEquals(img), "decode == raw call")
        testBuildingBlocks(pipe)

        // Generation: one-shot == raw sf_generate == step-wise.
        val o = GenerationOptions(prompt = "a photo of an astronaut riding a horse on mars", negativePrompt = "blurry, low quality",
                                  width = 64, height = 64, steps = 8, guidanceScale = 7.5, seed = 1234L, sampler = Sampler.DDIM)
        val one = pipe.txt2img(o)
        check(one.width == 64 && one.height == 64, "image size")
        check(one.pixels.contentEquals(rawGenerate(pipe, o)), "txt2img == raw sf_generate")
        check(one.parameters.contains("Seed: 1234"), "parameters: ${one.parameters}")
        pipe.start(o).use { job ->
            var n = 0
            for (step in pipe.steps(job)) {
                n++
                check(step.index == n && step.total == 8, "step index")
                check(step.latents().size == 256, "latents size")
                step.preview().use { check(it.width == 8, "preview size") }
            }
            check(n == 8, "8 steps")
            check(job.image!!.pixels.contentEquals(one.pixels), "step-wise == one-shot")
            job.image!!.close()  // the image outlives its job: the caller closes it
        }
        // Progress, stop, throwing callback, cancel from another thread.
        val seen = ArrayList<Int>()
        pipe.txt2img(o.copy(steps = 3)) { s, _ -> seen.add(s); false }.close()
        check(seen == listOf(1, 2, 3), "progress $seen")
        throws<CancelledException>("progress stop") { pipe.txt2img(o) { s, _ -> s >= 2 } }
        throws<ArithmeticException>("progress exception rethrown") { pipe.txt2img(o) { s, _ -> if (s == 2) throw ArithmeticException("x"); false } }
        throws<CancelledException>("cancel from another thread") {
            pipe.txt2img(o) { s, _ -> if (s == 2) Thread { pipe.cancel() }.apply { start(); join() }; false }
        }
        pipe.start(o).use { job ->
            throws<CancelledException>("job cancel") {
                for (step in pipe.steps(job)) if (step.index == 3) Thread { job.cancel() }.apply { start(); join() }
            }
            check(job.stepsDone == 3, "cancelled after 3 steps")
        }
        pipe.txt2img(o).use { check(it.pixels.contentEquals(one.pixels), "same image after cancellations") }
        // PNG round trip and img2img.
        val path = "$tmp/kotlin-test.png"
        one.save(path)
        Image.open(path).use { check(it.pixels.contentEquals(one.pixels), "png round trip") }
        val a = pipe.txt2img(o.copy(initImage = one, strength = 0.6))
        check(!a.pixels.contentEquals(one.pixels) && a.width == 64, "img2img")
        for (w in listOf(60, 72)) {  // 72: a multiple of 8, not of tiny-sd's 16
            val bad = throws<SnapFusionException>("bad width $w") { pipe.txt2img(o.copy(width = w)) }
            check(bad?.status == Status.INVALID_ARGUMENT && bad.message!!.contains("multiples of 16") &&
                  bad.message!!.contains("${w}x64"), "bad width message: ${bad?.message}")
        }
        a.close()
        one.close()
        testGeneration11(pipe, o)
        testThreads(model, pipe, o)
    }
    testSchedule(model)
    testFiles(model)
    testMemoryOptions(model, tmp, args[2])
    testInspectAndEstimate(model, tmp, args[2])
    check(NativeHandle.live.get() == live0, "all native objects closed (live ${NativeHandle.live.get()} vs $live0)")
    // Unclosed objects are freed by the Cleaner once unreachable.
    run {
        for (i in 0 until 3) Pipeline.load(model, threads = 1, components = setOf(Network.TEXT_ENCODER)).encodePrompt("x")
    }
    var tries = 0
    while (NativeHandle.live.get() != live0 && tries++ < 100) { System.gc(); Thread.sleep(20) }
    check(NativeHandle.live.get() == live0, "Cleaner freed unclosed pipelines (live ${NativeHandle.live.get()})")

    // A single-file checkpoint (the models set's) with its config folder (configPath,
    // SF_PARAM_CONFIG_PATH): the same text embedding and UNet output as the folder, bit for bit.
    val models = File(File(model).absoluteFile.parentFile.parentFile, "models")
    val single = File(models, "single-file/tiny-sd-mini.safetensors")
    val config = File(models, "tiny-sd-mini")
    if (single.isFile && config.isDirectory) {
        Pipeline.load(single.path, threads = 1, configPath = config.path).use { a ->
            Pipeline.load(config.path, threads = 1).use { b ->
                val ea = a.encodePrompt("a watercolor fox")
                check(ea.contentEquals(b.encodePrompt("a watercolor fox")), "single file: text embedding")
                val lat = FloatArray(4 * 8 * 8) { ((it * 37) % 101) / 50f - 1f }
                val t = floatArrayOf(621f)
                check(a.unetPredict(lat, 1, 8, 8, t, ea).contentEquals(b.unetPredict(lat, 1, 8, 8, t, ea)),
                      "single file: UNet output")
                check(a.describe().contains("single-file checkpoint"), "single file: describe")
            }
        }
        val e = throws<SnapFusionException>("configPath with a folder") {
            Pipeline.load(config.path, threads = 1, configPath = config.path)
        }
        check(e?.status == Status.INVALID_ARGUMENT, "configPath with a folder: ${e?.status}")
    } else {
        println("single-file checks skipped: ${single.path} not found")
    }

    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
