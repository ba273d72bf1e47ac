export default function Home() {
  return (
    <main>
      <h1>kiln-matrix:react-router-spa</h1>
      <p>React Router in SPA mode (ssr: false): a static build in build/client/.</p>
    </main>
  );
}
