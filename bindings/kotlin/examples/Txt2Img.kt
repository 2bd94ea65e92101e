// Text to image with the Kotlin binding: prompt in, PNG out, one line per step.
// Arguments: MODEL_DIR PROMPT OUT.png [STEPS] [SEED]; one thread per core (the default).
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
import snapfusion.use
import kotlin.system.exitProcess

fun main(args: Array<String>) {
    if (args.size < 3) {
        System.err.println("usage: Txt2ImgKt MODEL_DIR PROMPT OUT.png [STEPS] [SEED]")
        exitProcess(2)
    }
    val options = GenerationOptions(prompt = args[1], steps = args.getOrNull(3)?.toInt() ?: 8,
                                    seed = args.getOrNull(4)?.toLong() ?: 0L, guidanceScale = 7.5)
    try {
        Pipeline.load(args[0]).use { pipe ->
            pipe.start(options).use { job ->
                for (step in pipe.steps(job)) println("step ${step.index}/${step.total}")
                val image = job.image!!
                image.save(args[2])
                println("${args[2]}: ${image.width}x${image.height}")
            }
        }
    } catch (e: SnapFusionException) {
        System.err.println("txt2img: ${e.status}: ${e.message}")
        exitProcess(1)
    }
}
