// Text to image with the Kotlin binding: prompt in, PNG out, one line per step.
// Arguments: [--weights f32|f16|q8] [--low-memory] MODEL_DIR PROMPT OUT.png [STEPS] [SEED];
// one thread per core (the default). --weights f16 halves the weights' memory, q8 quarters it
// (default: as the checkpoint stores them); --low-memory keeps one network resident at a time.
// Build and run it from the root of a built source tree (Debian: apt-get install kotlin
// libjna-java); the same commands are in bindings/README.md, and the tests run them as
// written (tests/bindings/doc_commands.py, doc-test: kotlin-build-run):
//   kotlinc -cp /usr/share/java/jna.jar bindings/kotlin/src/snapfusion/SnapFusion.kt -d snapfusion-kotlin.jar
//   kotlinc -cp /usr/share/java/jna.jar:snapfusion-kotlin.jar bindings/kotlin/examples/Txt2Img.kt -d txt2img.jar
//   SNAPFUSION_LIBRARY=build/libsnapfusion.so java -cp snapfusion-kotlin.jar:txt2img.jar:/usr/share/java/jna.jar:/usr/share/java/kotlin-stdlib.jar \
//       Txt2ImgKt ../shared/fixtures/public/tiny-sd "a photo of a cat" cat.png
import snapfusion.GenerationOptions
import snapfusion.Pipeline
import snapfusion.SnapFusionException
import snapfusion.WeightType
import snapfusion.use
import kotlin.system.exitProcess

const val USAGE = "usage: Txt2ImgKt [--weights f32|f16|q8] [--low-memory] MODEL_DIR PROMPT OUT.png [STEPS] [SEED]"

fun main(argv: Array<String>) {
    var weights: WeightType? = null
    var lowMemory = false
    val args = ArrayList<String>()
    var i = 0
    while (i < argv.size) {
        when (argv[i]) {
            "--weights" -> {
                val name = argv.getOrNull(++i) ?: run { System.err.println(USAGE); exitProcess(2) }
                weights = try {
                    WeightType.fromName(name)
                } catch (e: SnapFusionException) {
                    System.err.println("txt2img: ${e.message}")
                    exitProcess(2)
                }
            }
            "--low-memory" -> lowMemory = true
            else -> args.add(argv[i])
        }
        i++
    }
    if (args.size < 3) {
        System.err.println(USAGE)
        exitProcess(2)
    }
    val options = GenerationOptions(prompt = args[1], steps = args.getOrNull(3)?.toInt() ?: 8,
                                    seed = args.getOrNull(4)?.toLong() ?: 0L, guidanceScale = 7.5)
    try {
        Pipeline.load(args[0], weights = weights, lowMemory = lowMemory).use { pipe ->
            pipe.start(options).use { job ->
                for (step in pipe.steps(job)) println("step ${step.index}/${step.total}")
                val image = job.image!!
                image.save(args[2])
                println("${args[2]}: ${image.width}x${image.height}, weights in memory %.2f MB".format(pipe.weightBytes / 1e6))
            }
        }
    } catch (e: SnapFusionException) {
        System.err.println("txt2img: ${e.status}: ${e.message}")
        exitProcess(1)
    }
}
