# bench/contention.gp: plot bench/results/contention.csv (tools/bench runs it).
# gnuplot -e "dir='bench/results'" bench/contention.gp  ->  dir/contention.png
if (!exists("dir")) dir = "bench/results"
set datafile separator ","
set terminal pngcairo size 1400,520 font ",10"
set output dir."/contention.png"
series(impl, buckets) = sprintf("< grep '^%s,%s,' %s/contention.csv", impl, buckets, dir)
set logscale x 2
set xlabel "processes"
set key top left
set grid
set multiplot layout 1,2 title "Contention: processes deciding as fast as they can (bucket always admits)"
set title "aggregate decisions per second"
set ylabel "decisions/s"
set format y "%.0s%c"
plot series("libratelimit", "one") using 3:4 with linespoints lw 2 title "libratelimit, one bucket", \
     series("libratelimit", "distinct") using 3:4 with linespoints lw 2 title "libratelimit, a bucket each", \
     series("mutex", "one") using 3:4 with linespoints dt 2 title "robust mutex, one lock", \
     series("mutex", "distinct") using 3:4 with linespoints dt 2 title "robust mutex, a lock each"
set title "p99 latency per decision (every 64th call timed)"
set ylabel "ns"
set logscale y 10
set format y "%g"
plot series("libratelimit", "one") using 3:6 with linespoints lw 2 title "libratelimit, one bucket", \
     series("libratelimit", "distinct") using 3:6 with linespoints lw 2 title "libratelimit, a bucket each", \
     series("mutex", "one") using 3:6 with linespoints dt 2 title "robust mutex, one lock", \
     series("mutex", "distinct") using 3:6 with linespoints dt 2 title "robust mutex, a lock each"
unset multiplot
