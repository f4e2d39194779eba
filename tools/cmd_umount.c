/* cairn umount: end a cairn mount and its server. */
#include "util.h"

#define UMOUNT_WAIT_MS 60000 /* a server ending writes its last cache records first */

int cmd_umount(struct cli *cli, int argc, char **argv)
{
	const struct opt opts[] = { OPT_END };
	cli_parse(cli, "MOUNTPOINT", opts, argc, argv);
	int err = cairn_umount(cli->args[0], UMOUNT_WAIT_MS);
	return err < 0 ? cli_fail(cli, err) : 0;
}
