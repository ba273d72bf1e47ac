import './App.css';

function App() {
  return (
    <div className="App">
      <header className="App-header">
        <h1>kiln-matrix:cra</h1>
        <p>
          Edit <code>src/App.js</code> and save to reload.
        </p>
      </header>
    </div>
  );
}

export default App;
