// Text to image with the Kotlin binding: prompt in, PNG out, one line per step.
//   java -cp snapfusion-kotlin.jar:txt2img.jar:/usr/share/java/jna.jar Txt2ImgKt MODEL_DIR "a photo of a cat" out.png [steps] [seed]
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
        Pipeline.load(args[0], threads = 1).use { pipe ->
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
