/* Other ways of starting processes: posix_spawn, system, popen. The children are
 * exec'd, so each chooses its allocator again from its own environment. */
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include "check.h"

extern char **environ;

int main(void) {
    pid_t pid;
    char *argv[] = {"sh", "-c", "exit 7", NULL};
    int status = 0;
    CHECK(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0, "posix_spawn");
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7, "spawned status %#x", status);
    CHECK(system("exit 3") >> 8 == 3, "system");
    FILE *f = popen("echo popen-output", "r");
    char line[64] = "";
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "popen-output\n") == 0, "popen read '%s'", line);
    CHECK(f && pclose(f) == 0, "pclose");
    printf("spawn done under %s: %d failures\n", active_backend(), failures);
    return failures != 0;
}
