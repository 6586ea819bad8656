/* slimnet-classify: the vendor's inference service (sliminfer) as a tool, on
 * sn_classifier.
 *
 *   slimnet-classify --model_name=lenet --checkpoint_path=TRAIN_DIR img1.jpg dir/ ...
 *
 * Loads the newest checkpoint of TRAIN_DIR (or a prefix) and the class names from
 * labels.txt/info.json beside it (or --labels_dir; a labels.txt alone will do, as TF-slim's
 * "0:background\n1:tench, Tinca tinca\n..." beside a published checkpoint, with
 * --labels_offset=1 for a 1000-class net), then prints for every image (files, or every
 * .jpg/.jpeg/.png of a folder, sorted) its top-k classes on stdout, each name with its
 * class id (names repeat in ImageNet: "crane" is 135 and 518):
 *     happy/0001.jpg: happy (3) 0.9731, surprise (6) 0.0142, neutral (4) 0.0061
 * or with --output_format=json one JSON object per line:
 *     {"image":"happy/0001.jpg","predictions":[{"id":3,"label":"happy",
 *      "probability":0.9731},...]}   ({"image":...,"error":"..."} for an unreadable image)
 * The restore report (variables restored, checkpoint tensors left unused) goes to stderr.
 * Exit status: 0 all classified, 1 an error (an unreadable image is reported and the
 * others are still classified), 2 bad flags. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "../lib/slimnet.h"
#include "common/flags.h"
#include "common/tool.h"

#define TOOL "slimnet-classify"
#define MAX_INPUTS 4096
#define MAX_FILE_BYTES ((long)256 << 20)

static const char usage_text[] =
    "usage: slimnet-classify --model_name=NAME --checkpoint_path=PATH [flags] IMAGE|DIR ...\n"
    "Prints the top-k classes of each image.";

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return n[0] != '.' && dot &&
           (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole file (bounded); on failure says why in why and returns 1. */
static int read_file(const char *path, uint8_t **data, size_t *len, char *why, size_t cap) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "%s", strerror(errno));
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > MAX_FILE_BYTES) {
        snprintf(why, cap, "%s", n < 0 ? "cannot tell its size" : "larger than 256 MiB");
        fclose(f);
        return 1;
    }
    *data = malloc((size_t)n + 1);
    if (!*data || fread(*data, 1, (size_t)n, f) != (size_t)n) {
        snprintf(why, cap, "read failed");
        free(*data);
        *data = NULL;
        fclose(f);
        return 1;
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

/* happy/0001.jpg: happy (3) 0.9731, surprise (6) 0.0142 */
static void print_text(const char *file, const sn_prediction *top, int n, int offset) {
    printf("%s:", file);
    for (int j = 0; j < n; j++) {
        if (top[j].label)
            printf("%s %s (%d) %.4f", j ? "," : "", top[j].label, top[j].id + offset,
                   (double)top[j].probability);
        else
            printf("%s class %d %.4f", j ? "," : "", top[j].id + offset,
                   (double)top[j].probability);
    }
    printf("\n");
}

/* One line: {"image":...,"predictions":[{"id":..,"label":..,"probability":..}]}, or
 * {"image":...,"error":...} when error is not NULL. */
static void print_json(const char *file, const char *error, const sn_prediction *top, int n,
                       int offset) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "image", file);
    if (error) {
        cJSON_AddStringToObject(o, "error", error);
    } else {
        cJSON *list = cJSON_AddArrayToObject(o, "predictions");
        for (int j = 0; j < n; j++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "id", top[j].id + offset);
            if (top[j].label) cJSON_AddStringToObject(p, "label", top[j].label);
            else cJSON_AddNullToObject(p, "label");
            /* float's precision, not double's 17 digits of noise */
            char num[32];
            snprintf(num, sizeof num, "%.7g", (double)top[j].probability);
            cJSON_AddItemToObject(p, "probability", isfinite(top[j].probability)
                                                        ? cJSON_CreateRaw(num)
                                                        : cJSON_CreateNull());
            cJSON_AddItemToArray(list, p);
        }
    }
    char *text = cJSON_PrintUnformatted(o);
    if (text) printf("%s\n", text);
    else fprintf(stderr, TOOL ": %s: out of memory\n", file);
    cJSON_free(text);
    cJSON_Delete(o);
}

/* Expands folders into their image files, sorted. */
static int collect(const char *arg, char **list, int *n) {
    struct stat sb;
    if (stat(arg, &sb) != 0) {
        fprintf(stderr, TOOL ": %s: %s\n", arg, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (*n >= MAX_INPUTS) goto too_many;
        list[(*n)++] = strdup(arg);
        return 0;
    }
    DIR *d = opendir(arg);
    if (!d) {
        fprintf(stderr, TOOL ": %s: %s\n", arg, strerror(errno));
        return 1;
    }
    int first = *n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        if (*n >= MAX_INPUTS) {
            closedir(d);
            goto too_many;
        }
        size_t dl = strlen(arg), len;
        while (dl > 1 && arg[dl - 1] == '/') dl--;   /* "dir/" + name: no "dir//name" */
        len = dl + strlen(e->d_name) + 2;
        list[*n] = malloc(len);
        if (list[*n])
            snprintf(list[(*n)++], len, "%.*s%s%s", (int)dl, arg, arg[dl - 1] == '/' ? "" : "/",
                     e->d_name);
    }
    closedir(d);
    qsort(list + first, (size_t)(*n - first), sizeof *list, cmp_str);
    return 0;
too_many:
    fprintf(stderr, TOOL ": more than %d images; classify them in several calls\n",
            MAX_INPUTS);
    return 1;
}

int main(int argc, char **argv) {
    tool_init(argv);
    const char *model_name = NULL, *checkpoint_path = NULL, *labels_dir = NULL;
    const char *preprocessing_name = NULL, *device = "auto", *output_format = "text";
    int num_classes = 0, labels_offset = 0, image_size = 0, top_k = 5, fer_extra = 0;
    int threads = 0, channels = 3, use_grayscale = 0;
    double moving_average_decay = 0;
    flag fl[] = {
        {"model_name", FLAG_STRING, &model_name, "network (required)", 0, 0, 0},
        {"checkpoint_path", FLAG_STRING, &checkpoint_path,
         "checkpoint prefix or train folder (required)", 0, 0, 0},
        {"model_dir", FLAG_STRING, &checkpoint_path, "alias of --checkpoint_path", 0,
         "checkpoint_path", 0},
        {"labels_dir", FLAG_STRING, &labels_dir,
         "folder of labels.txt/info.json; None = the checkpoint's folder", 0, 0, 0},
        {"num_classes", FLAG_INT, &num_classes, "classes; 0 = from info.json/labels.txt", 0,
         0, "[0,)"},
        {"labels_offset", FLAG_INT, &labels_offset, "label = class id + offset", 0, 0, "[0,)"},
        {"fer_extra_class", FLAG_BOOL, &fer_extra,
         "fer: the vendor's num_class + 1 logits", 0, 0, 0},
        {"preprocessing_name", FLAG_STRING, &preprocessing_name,
         "lenet, cifarnet, vgg or inception; None = from model_name", 0, 0, 0},
        {"eval_image_size", FLAG_INT, &image_size, "image size; 0 = the model's default", 0,
         0, "[0,8192]"},
        {"moving_average_decay", FLAG_DOUBLE, &moving_average_decay,
         "> 0: use the moving averages of the variables", 0, 0, "[0,1]"},
        {"channels", FLAG_INT, &channels, "channels images are decoded to: 3, or 1 for a "
         "net trained on 1-channel data (mnist)", 0, 0, 0},
        {"use_grayscale", FLAG_BOOL, &use_grayscale,
         "the net was trained with --use_grayscale", 0, 0, 0},
        {"top_k", FLAG_INT, &top_k, "classes printed per image", 0, 0, "[1,)"},
        {"output_format", FLAG_STRING, &output_format,
         "text (file: name (id) probability, ...) or json (one object per line)", 0, 0, 0},
        {"device", FLAG_STRING, &device, "auto, cpu or cuda", 0, 0, 0},
        {"threads", FLAG_INT, &threads, "CPU threads; 0 = all cores", 0, 0, "[0,4096]"},
    };
    int nfl = (int)(sizeof fl / sizeof fl[0]);
    const char *pos[256];
    int npos = 0;
    int rc = flags_parse(TOOL, usage_text, fl, nfl, argc, argv, pos, 256, &npos);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model_name || !checkpoint_path || npos == 0) {
        fprintf(stderr, TOOL ": --model_name, --checkpoint_path and at least one image or "
                        "folder are required (see --help)\n");
        return 2;
    }
    if (channels != 1 && channels != 3) {
        fprintf(stderr, TOOL ": --channels=%d: must be 1 or 3\n", channels);
        return 2;
    }
    int json = output_format && !strcmp(output_format, "json");
    if (!json && (!output_format || strcmp(output_format, "text"))) {
        fprintf(stderr, TOOL ": --output_format=%s: must be text or json\n",
                output_format ? output_format : "None");
        return 2;
    }
    if ((rc = tool_check_model(TOOL, model_name))) return rc;
    char **files = calloc(MAX_INPUTS, sizeof *files);
    int nfiles = 0;
    if (!files) return 1;
    for (int i = 0; i < npos; i++)
        if (collect(pos[i], files, &nfiles)) rc = 1;
    sn_ctx *ctx = tool_ctx(TOOL, device, 1, threads, 0);
    sn_classifier *c = NULL;
    if (!ctx) rc = 1;
    if (ctx) {
        sn_classifier_params cp = sn_classifier_params_default();
        cp.model_name = model_name;
        cp.checkpoint_path = checkpoint_path;
        cp.labels_dir = labels_dir;
        cp.num_classes = num_classes;
        cp.labels_offset = labels_offset;
        cp.fer_extra_class = fer_extra;
        cp.preprocessing_name = preprocessing_name;
        cp.image_size = image_size;
        cp.use_moving_averages = moving_average_decay > 0;
        cp.channels = channels;
        cp.use_grayscale = use_grayscale;
        if (sn_classifier_new(ctx, &cp, &c) != SN_OK) {
            tool_fail(TOOL, ctx, checkpoint_path);
            rc = 1;
        } else {
            tool_print_restore(stderr, TOOL, sn_classifier_restore_report(c), 5);
        }
    }
    sn_prediction *top = calloc((size_t)top_k, sizeof *top);
    for (int i = 0; c && top && i < nfiles; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        int n = 0;
        char why[1024] = "";
        if (read_file(files[i], &data, &len, why, sizeof why) == 0 &&
            sn_classify(c, data, len, top_k, top, &n) != SN_OK)
            snprintf(why, sizeof why, "%s", sn_ctx_errmsg(ctx));
        free(data);
        if (why[0]) {
            fprintf(stderr, TOOL ": %s: %s\n", files[i], why);
            rc = 1;
        }
        if (json) print_json(files[i], why[0] ? why : NULL, top, n, labels_offset);
        else if (!why[0]) print_text(files[i], top, n, labels_offset);
    }
    free(top);
    for (int i = 0; i < nfiles; i++) free(files[i]);
    free(files);
    sn_classifier_free(c);
    sn_ctx_free(ctx);
    return rc;
}
