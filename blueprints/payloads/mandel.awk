# Renders one tile of the Mandelbrot set as a plain-text PGM (P2): the escape iteration count of
# every pixel, one image row per line. Run with busybox awk (double-precision arithmetic):
#
#   awk -f mandel.awk -v w=240 -v h=160 -v x0=0 -v x1=240 -v y0=40 -v y1=80 -v maxit=256
#
# w, h: the whole image in pixels; [x0, x1) x [y0, y1): the tile; maxit: the iteration limit
# (1..65535, also the PGM's maxval). The view is re -2.25..0.75, im -1..1 (3:2), sampled at pixel
# centres. blueprints/fractal.py renders the same tile in Python with the same operations in the
# same order, so both produce the same bytes.
BEGIN {
    if (w < 1 || h < 1 || x0 < 0 || y0 < 0 || x1 > w || y1 > h || x0 >= x1 || y0 >= y1 \
        || maxit < 1 || maxit > 65535) {
        print "mandel.awk: bad tile or size" > "/dev/stderr"
        exit 2
    }
    printf "P2\n%d %d\n%d\n", x1 - x0, y1 - y0, maxit
    for (py = y0; py < y1; py++) {
        cy = 1.0 - 2.0 * (py + 0.5) / h
        line = ""
        for (px = x0; px < x1; px++) {
            cx = -2.25 + 3.0 * (px + 0.5) / w
            zx = 0; zy = 0; i = 0
            while (i < maxit) {
                x2 = zx * zx
                y2 = zy * zy
                if (x2 + y2 > 4) break
                zy = 2 * zx * zy + cy
                zx = x2 - y2 + cx
                i++
            }
            line = line (px > x0 ? " " : "") i
        }
        print line
    }
}
