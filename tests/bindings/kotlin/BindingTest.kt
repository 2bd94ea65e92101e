// Tests of the Kotlin (JNA) binding on the tiny-sd fixture model: every result is compared
// with the same computation made by direct calls of the C functions (SfLib), so the
// wrapper adds nothing and loses nothing. Prints "N passed, M failed"; exit 1 on failure.
import com.sun.jna.ptr.PointerByReference
import snapfusion.*
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

fun main(args: Array<String>) {
    val model = args[0]
    val tmp = args[1]
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
        check(SfLib.lib.sf_unet_predict(pipe.nativePointer, lat, SizeT(2), SizeT(8), SizeT(8), ts, text, SizeT(77), rawEps) == 0, "raw unet")
        check(eps.contentEquals(rawEps), "unet == raw call")
        val img = pipe.decode(lat, 2, 8, 8)
        check(img.size == 2 * 3 * 64 * 64 && img.any { it != 0f }, "decode")

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
        val bad = throws<SnapFusionException>("bad width") { pipe.txt2img(o.copy(width = 60)) }
        check(bad?.status == Status.INVALID_ARGUMENT && bad.message!!.contains("multiples of 8"), "bad width message: ${bad?.message}")
        a.close()
        one.close()
    }
    check(NativeHandle.live.get() == live0, "all native objects closed (live ${NativeHandle.live.get()} vs $live0)")
    // Unclosed objects are freed by the Cleaner once unreachable.
    run {
        for (i in 0 until 3) Pipeline.load(model, threads = 1, components = setOf(Network.TEXT_ENCODER)).encodePrompt("x")
    }
    var tries = 0
    while (NativeHandle.live.get() != live0 && tries++ < 100) { System.gc(); Thread.sleep(20) }
    check(NativeHandle.live.get() == live0, "Cleaner freed unclosed pipelines (live ${NativeHandle.live.get()})")

    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
